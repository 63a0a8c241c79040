"""100 tools with realistic schemas (and `echo`), as `{"tools": [...]}` on stdout, for the catalog bench
(`bench/run.sh catalog`): the shapes of benches/openapi.rs (FastMCP/pydantic `$defs` and
nullable `anyOf`, zod draft-07 with `additionalProperties: false`, schemars 2020-12 `oneOf`
enums, a recursive `$ref`, small tools), one in five each, with GitHub-style nested objects in
the zod shape."""

import json
import sys


def pydantic(i):
    return {
        "name": f"create_ticket_{i}",
        "description": "Create a support ticket for a customer, with an optional address and a list of line items.",
        "inputSchema": {
            "$defs": {
                "Address": {"properties": {
                    "street": {"title": "Street", "type": "string"}, "city": {"title": "City", "type": "string"},
                    "zip": {"anyOf": [{"type": "string", "pattern": "^[0-9]{5}$"}, {"type": "null"}], "default": None, "title": "Zip"},
                    "country": {"default": "US", "title": "Country", "type": "string", "minLength": 2, "maxLength": 2}},
                    "required": ["street", "city"], "title": "Address", "type": "object"},
                "Priority": {"enum": ["low", "normal", "high", "urgent"], "title": "Priority", "type": "string"},
                "LineItem": {"properties": {
                    "sku": {"title": "Sku", "type": "string"}, "quantity": {"exclusiveMinimum": 0, "title": "Quantity", "type": "integer"},
                    "price": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None, "title": "Price"},
                    "tags": {"items": {"type": "string"}, "title": "Tags", "type": "array"}},
                    "required": ["sku", "quantity"], "title": "LineItem", "type": "object"},
            },
            "properties": {
                "customer_id": {"title": "Customer Id", "type": "integer", "minimum": 1},
                "subject": {"title": "Subject", "type": "string", "maxLength": 200},
                "body": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Body"},
                "priority": {"$ref": "#/$defs/Priority", "default": "normal"},
                "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None},
                "items": {"items": {"$ref": "#/$defs/LineItem"}, "title": "Items", "type": "array"},
                "due": {"anyOf": [{"format": "date-time", "type": "string"}, {"type": "null"}], "default": None, "title": "Due"},
            },
            "required": ["customer_id", "subject", "items"], "title": f"create_ticket_{i}Arguments", "type": "object",
        },
        "outputSchema": {
            "$defs": {"Ticket": {"properties": {"id": {"type": "integer"}, "status": {"type": "string", "enum": ["open", "closed"]},
                                                "url": {"type": "string", "format": "uri"}}, "required": ["id", "status"], "type": "object"}},
            "properties": {"result": {"$ref": "#/$defs/Ticket"}}, "required": ["result"], "type": "object",
        },
    }


def zod(i):
    user = {"type": "object", "properties": {"login": {"type": "string"}, "id": {"type": "number"},
                                              "site_admin": {"type": "boolean"}}, "additionalProperties": False}
    return {
        "name": f"search_issues_{i}",
        "description": "Search issues and pull requests across repositories.",
        "inputSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {
                "q": {"type": "string", "description": "Search query"},
                "sort": {"type": "string", "enum": ["comments", "reactions", "created", "updated"]},
                "order": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                "per_page": {"type": "number", "minimum": 1, "maximum": 100},
                "page": {"type": "number", "minimum": 1},
                "labels": {"type": "array", "items": {"type": "string"}},
                "filters": {"type": "object", "properties": {
                    "state": {"type": "string", "enum": ["open", "closed", "all"]},
                    "author": user, "assignee": user,
                    "since": {"type": "string", "format": "date-time"},
                    "repo": {"type": "object", "properties": {"owner": {"type": "string"}, "name": {"type": "string"}},
                             "required": ["owner", "name"], "additionalProperties": False}},
                    "additionalProperties": False},
            },
            "required": ["q"], "additionalProperties": False,
        },
    }


def schemars(i):
    return {
        "name": f"run_query_{i}", "description": "Run a read-only SQL query.",
        "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "QueryArgs", "type": "object",
            "properties": {"sql": {"type": "string"}, "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
                           "format": {"$ref": "#/$defs/OutputFormat"}, "params": {"type": "array", "items": {"$ref": "#/$defs/Param"}}},
            "required": ["sql", "format"],
            "$defs": {
                "OutputFormat": {"oneOf": [
                    {"description": "Rows as JSON objects.", "type": "string", "const": "json"},
                    {"description": "Comma separated.", "type": "string", "const": "csv"},
                    {"description": "A Markdown table.", "type": "string", "const": "markdown"}]},
                "Param": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"$ref": "#/$defs/Scalar"}},
                          "required": ["name", "value"]},
                "Scalar": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]},
            },
        },
    }


def recursive(i):
    return {
        "name": f"write_outline_{i}", "description": "Write a nested outline.",
        "inputSchema": {"type": "object",
                        "properties": {"title": {"type": "string"}, "root": {"$ref": "#/$defs/Node"}, "also": {"$ref": "#/properties/root"}},
                        "required": ["title", "root"],
                        "$defs": {"Node": {"type": "object", "properties": {
                            "text": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                            "required": ["text"]}}},
    }


def small(i):
    if i % 2 == 0:
        return {"name": f"get_time_{i}", "description": "Current time in a timezone.",
                "inputSchema": {"type": "object", "properties": {"timezone": {"type": "string", "description": "IANA name"}},
                                "required": ["timezone"]}}
    return {"name": f"list_things_{i}", "description": "List everything.", "inputSchema": {"type": "object"}}


n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
shapes = [pydantic, zod, schemars, recursive, small]
# Plus the echo server's own `echo`, so the bench can tell each server is up by calling it.
echo = {"name": "echo", "description": "Echo the given message.",
        "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}
json.dump({"tools": [shapes[i % 5](i) for i in range(n)] + [echo]}, sys.stdout)
