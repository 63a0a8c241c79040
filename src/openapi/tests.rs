//! Real-world-shaped schemas through the whole pipeline, with exact expected output.

use serde_json::{Value, json};

use super::*;

fn tool(name: &str, input: Value) -> rmcp::model::Tool {
    tool_from(json!({ "name": name, "inputSchema": input }))
}

fn tool_from(raw: Value) -> rmcp::model::Tool {
    serde_json::from_value(raw).expect("test tool deserializes")
}

fn prep(name: &str, input: Value) -> PreparedTool {
    prepare_tool("srv", &tool(name, input))
}

fn info(security: bool) -> SpecInfo {
    SpecInfo {
        title: "Test server".into(),
        version: "1.2.3".into(),
        description: Some("Use these tools wisely.".into()),
        server_url: Some("/srv".into()),
        api_key_security: security,
    }
}

fn server_doc(tools: &[PreparedTool]) -> Value {
    let doc = server_document(&info(false), "srv", tools, |t| format!("/{t}"));
    assert_refs_resolve(&doc);
    doc
}

fn body_schema<'a>(doc: &'a Value, path: &str) -> &'a Value {
    &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
}

fn schemas(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
}

/// Every `$ref` (and discriminator mapping) anywhere in the document points into
/// `#/components/schemas` at a schema that exists; component names are valid; nothing that
/// only makes sense in a standalone JSON Schema document is left.
fn assert_refs_resolve(doc: &Value) {
    let names = schemas(doc);
    for name in names.keys() {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "bad component name {name:?}"
        );
    }
    let check = |r: &str| {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("ref outside components: {r}"));
        assert!(names.contains_key(name), "dangling ref {r}");
    };
    walk(doc, &mut |key, value| match key {
        "$ref" => check(value.as_str().expect("string $ref")),
        "mapping" => value
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .for_each(|v| check(v.as_str().expect("string mapping"))),
        "$defs" | "definitions" | "$schema" | "$id" | "$anchor" | "nullable" | "$dynamicRef" => {
            panic!("{key} left in the document")
        }
        _ => {}
    });
}

fn walk(value: &Value, f: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                f(k, v);
                walk(v, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

fn count_refs(doc: &Value) -> usize {
    let mut n = 0;
    walk(doc, &mut |k, _| n += usize::from(k == "$ref"));
    n
}

// ---------------------------------------------------------------------------------------------
// Schema normalisation

/// What FastMCP / pydantic v2 emits for `def create_user(name: str, address: Address | None = None)`.
#[test]
fn pydantic_defs_and_optional_ref() {
    let t = prep(
        "create_user",
        json!({
            "$defs": {
                "Address": {
                    "properties": {
                        "street": { "title": "Street", "type": "string" },
                        "zip": { "title": "Zip", "type": "integer" }
                    },
                    "required": ["street", "zip"],
                    "title": "Address",
                    "type": "object"
                }
            },
            "properties": {
                "name": { "title": "Name", "type": "string" },
                "address": { "anyOf": [{ "$ref": "#/$defs/Address" }, { "type": "null" }], "default": null }
            },
            "required": ["name"],
            "title": "create_userArguments",
            "type": "object"
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/create_user"),
        &json!({
            "properties": {
                "name": { "title": "Name", "type": "string" },
                "address": {
                    "anyOf": [{ "$ref": "#/components/schemas/create_user__Address" }, { "type": "null" }],
                    "default": null
                }
            },
            "required": ["name"],
            "title": "create_userArguments",
            "type": "object"
        })
    );
    assert_eq!(
        schemas(&doc)["create_user__Address"],
        json!({
            "properties": {
                "street": { "title": "Street", "type": "string" },
                "zip": { "title": "Zip", "type": "integer" }
            },
            "required": ["street", "zip"],
            "title": "Address",
            "type": "object"
        })
    );
    assert_eq!(
        doc["paths"]["/create_user"]["post"]["requestBody"]["required"],
        json!(true)
    );

    assert!(t.validates());
    assert_eq!(t.validate(&json!({ "name": "a", "address": null })), Ok(()));
    let err = t
        .validate(&json!({ "name": "a", "address": { "street": "x", "zip": "12" } }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/address/zip");
    assert!(err.message.contains("/address/zip"), "{}", err.message);
    assert!(
        err.schema_path().ends_with("/type"),
        "{}",
        err.schema_path()
    );
    // Wrong for every branch: the union itself is reported.
    let err = t
        .validate(&json!({ "name": "a", "address": "x" }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/address");
    assert!(err.message.contains("anyOf"), "{}", err.message);
    let err = t.validate(&json!({})).unwrap_err();
    assert_eq!(err.instance_path(), "");
    assert_eq!(err.schema_path(), "/required");
    assert!(err.message.contains("\"name\""), "{}", err.message);
}

/// draft-07 `definitions` (zod-to-json-schema, TypeScript SDK servers), with `$schema`.
#[test]
fn draft07_definitions() {
    let t = prep(
        "add_items",
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "items": { "type": "array", "items": { "$ref": "#/definitions/Item" }, "minItems": 1 }
            },
            "required": ["items"],
            "additionalProperties": false,
            "definitions": {
                "Item": {
                    "type": "object",
                    "properties": { "sku": { "type": "string", "pattern": "^[A-Z]{3}-\\d+$" } },
                    "required": ["sku"]
                }
            }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/add_items"),
        &json!({
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": { "$ref": "#/components/schemas/add_items__Item" },
                    "minItems": 1
                }
            },
            "required": ["items"],
            "additionalProperties": false
        })
    );
    assert_eq!(
        schemas(&doc)["add_items__Item"],
        json!({
            "type": "object",
            "properties": { "sku": { "type": "string", "pattern": "^[A-Z]{3}-\\d+$" } },
            "required": ["sku"]
        })
    );
    assert!(t.validates());
    let err = t
        .validate(&json!({ "items": [{ "sku": "ABC-1" }, { "sku": "nope" }] }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/items/1/sku");
    assert_eq!(
        t.validate(&json!({ "items": [{ "sku": "ABC-1" }] })),
        Ok(())
    );
    let err = t.validate(&json!({ "items": [], "extra": 1 })).unwrap_err();
    assert_eq!(err.errors.len(), 2, "{err:?}");
}

/// zod-to-json-schema with `$refStrategy: "root"` (ms-365-mcp-server and the TypeScript SDK):
/// a repeated object is referenced by its first location, `#/properties/…`, and union members
/// by `…/anyOf/N`. Python mcpo crashes on these (open-webui/mcpo#117).
#[test]
fn zod_property_path_refs() {
    let t = prep(
        "send_mail",
        json!({
            "type": "object",
            "properties": {
                "body": {
                    "type": "object",
                    "properties": {
                        "from": {
                            "type": "object",
                            "properties": {
                                "emailAddress": {
                                    "type": "object",
                                    "properties": { "address": { "type": "string" }, "name": { "type": "string" } },
                                    "required": ["address"]
                                }
                            }
                        },
                        "toRecipients": { "type": "array", "items": { "$ref": "#/properties/body/properties/from" } },
                        "replyTo": { "anyOf": [{ "type": "string" }, { "type": "object", "properties": { "id": { "type": "string" } } }] },
                        "cc": { "$ref": "#/properties/body/properties/replyTo/anyOf/1" }
                    }
                }
            },
            "required": ["body"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/send_mail"),
        &json!({
            "type": "object",
            "properties": {
                "body": {
                    "type": "object",
                    "properties": {
                        "from": { "$ref": "#/components/schemas/send_mail__body.from" },
                        "toRecipients": { "type": "array", "items": { "$ref": "#/components/schemas/send_mail__body.from" } },
                        "replyTo": { "anyOf": [{ "type": "string" }, { "$ref": "#/components/schemas/send_mail__body.replyTo.anyOf.1" }] },
                        "cc": { "$ref": "#/components/schemas/send_mail__body.replyTo.anyOf.1" }
                    }
                }
            },
            "required": ["body"],
            "additionalProperties": false
        })
    );
    assert_eq!(
        schemas(&doc)["send_mail__body.from"],
        json!({
            "type": "object",
            "properties": {
                "emailAddress": {
                    "type": "object",
                    "properties": { "address": { "type": "string" }, "name": { "type": "string" } },
                    "required": ["address"]
                }
            }
        })
    );
    assert_eq!(
        schemas(&doc)["send_mail__body.replyTo.anyOf.1"],
        json!({ "type": "object", "properties": { "id": { "type": "string" } } })
    );
    let err = t
        .validate(&json!({ "body": { "toRecipients": [{ "emailAddress": { "address": 5 } }] } }))
        .unwrap_err();
    assert_eq!(
        err.instance_path(),
        "/body/toRecipients/0/emailAddress/address"
    );
}

/// `{"$ref": "#"}`: a tree. The root becomes a component and the body refers to it.
#[test]
fn recursive_root_ref() {
    let t = prep(
        "make_tree",
        json!({
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "children": { "type": "array", "items": { "$ref": "#" } }
            },
            "required": ["name"]
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/make_tree"),
        &json!({ "$ref": "#/components/schemas/make_tree__Input" })
    );
    assert_eq!(
        schemas(&doc)["make_tree__Input"],
        json!({
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "children": { "type": "array", "items": { "$ref": "#/components/schemas/make_tree__Input" } }
            },
            "required": ["name"]
        })
    );
    assert_eq!(
        doc["paths"]["/make_tree"]["post"]["requestBody"]["required"],
        json!(true)
    );
    let err = t
        .validate(&json!({ "name": "a", "children": [{ "name": "b", "children": [{}] }] }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/children/0/children/0");
}

/// pydantic discriminated union: `const` branches, `oneOf` and an OpenAPI-style
/// `discriminator.mapping` whose references must follow the components. Python mcpo drops
/// `enum`/`const`/`oneOf` (open-webui/mcpo#245).
#[test]
fn enum_const_and_discriminated_union() {
    let t = prep(
        "adopt",
        json!({
            "$defs": {
                "Cat": {
                    "properties": { "pet_type": { "const": "cat", "type": "string" }, "meows": { "type": "integer", "minimum": 0 } },
                    "required": ["pet_type", "meows"], "title": "Cat", "type": "object"
                },
                "Dog": {
                    "properties": { "pet_type": { "const": "dog", "type": "string" }, "barks": { "type": "number" } },
                    "required": ["pet_type", "barks"], "title": "Dog", "type": "object"
                }
            },
            "properties": {
                "pet": {
                    "discriminator": { "mapping": { "cat": "#/$defs/Cat", "dog": "#/$defs/Dog" }, "propertyName": "pet_type" },
                    "oneOf": [{ "$ref": "#/$defs/Cat" }, { "$ref": "#/$defs/Dog" }],
                    "title": "Pet"
                },
                "color": { "enum": ["red", "green"], "type": "string", "default": "red" },
                "when": { "type": "string", "format": "date-time", "examples": ["2024-01-01T00:00:00Z"] }
            },
            "required": ["pet"],
            "type": "object"
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    let body = body_schema(&doc, "/adopt");
    assert_eq!(
        body["properties"]["pet"],
        json!({
            "discriminator": {
                "mapping": { "cat": "#/components/schemas/adopt__Cat", "dog": "#/components/schemas/adopt__Dog" },
                "propertyName": "pet_type"
            },
            "oneOf": [{ "$ref": "#/components/schemas/adopt__Cat" }, { "$ref": "#/components/schemas/adopt__Dog" }],
            "title": "Pet"
        })
    );
    assert_eq!(
        body["properties"]["color"],
        json!({ "enum": ["red", "green"], "type": "string", "default": "red" })
    );
    assert_eq!(
        body["properties"]["when"],
        json!({ "type": "string", "format": "date-time", "examples": ["2024-01-01T00:00:00Z"] })
    );
    assert_eq!(
        schemas(&doc)["adopt__Cat"]["properties"]["pet_type"],
        json!({ "const": "cat", "type": "string" })
    );
    assert_eq!(
        t.validate(&json!({ "pet": { "pet_type": "dog", "barks": 2.5 } })),
        Ok(())
    );
    let err = t
        .validate(&json!({ "pet": { "pet_type": "cow", "moos": 1 } }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/pet");
    let err = t
        .validate(&json!({ "pet": { "pet_type": "cat", "meows": 1 }, "color": "blue" }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/color");
    // Formats are annotations: the upstream decides.
    assert_eq!(
        t.validate(&json!({ "pet": { "pet_type": "cat", "meows": 1 }, "when": "soon" })),
        Ok(())
    );
}

/// Keywords a typed schema model would drop survive byte for byte.
#[test]
fn keeps_every_keyword() {
    let input = json!({
        "type": "object",
        "$comment": "kept",
        "properties": {
            "anything": true,
            "nothing": false,
            "list": { "type": "array", "items": true, "prefixItems": [{ "type": "integer" }], "uniqueItems": true },
            "maybe": { "type": ["string", "null"], "default": null, "maxLength": 10 },
            "notFive": { "not": { "const": 5 } },
            "cond": {
                "if": { "properties": { "kind": { "const": "a" } } },
                "then": { "required": ["a"] },
                "else": { "required": ["b"] }
            },
            "tags": { "type": "object", "patternProperties": { "^x-": { "type": "string" } }, "propertyNames": { "pattern": "^[a-z-]+$" } },
            "both": { "allOf": [{ "required": ["a"] }, { "minProperties": 2 }], "dependentRequired": { "a": ["b"] } },
            "num": { "type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5 }
        },
        "additionalProperties": { "type": "string" }
    });
    let t = prep("kitchen_sink", input.clone());
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(body_schema(&doc, "/kitchen_sink"), &input);
    assert_eq!(count_refs(&doc), 7, "only the error responses' refs");
    let err = t.validate(&json!({ "nothing": 1 })).unwrap_err();
    assert_eq!(err.instance_path(), "/nothing");
    assert!(t.validate(&json!({ "notFive": 5 })).is_err());
    assert_eq!(
        t.validate(&json!({ "maybe": null, "anything": [1] })),
        Ok(())
    );
}

/// `{}`, `{"type":"object"}` and FastMCP's no-parameter schema become "any object"; an
/// explicit `additionalProperties: false` (no parameters at all) is kept.
#[test]
fn empty_and_property_less_schemas() {
    let any = json!({ "type": "object", "additionalProperties": true });
    for input in [
        json!({}),
        json!({ "type": "object" }),
        json!({ "$schema": "https://json-schema.org/draft/2020-12/schema" }),
    ] {
        let t = prep("noop", input.clone());
        assert_eq!(t.input_schema(), &any, "for {input}");
        assert!(!t.body_required());
        assert_eq!(t.validate(&Value::Null), Ok(()));
        assert_eq!(t.validate(&json!({ "x": 1 })), Ok(()));
        assert_eq!(t.arguments(Value::Null), serde_json::Map::new());
        assert_eq!(t.arguments(json!({ "x": 1 }))["x"], json!(1));
        let err = t.validate(&json!([1, 2])).unwrap_err();
        assert_eq!(
            err.message,
            "invalid arguments: the request body must be a JSON object"
        );
    }
    let t = prep(
        "fastmcp_noop",
        json!({ "properties": {}, "title": "noopArguments", "type": "object" }),
    );
    assert_eq!(
        t.input_schema(),
        &json!({ "properties": {}, "title": "noopArguments", "type": "object", "additionalProperties": true })
    );
    let closed = json!({ "type": "object", "additionalProperties": false });
    let t = prep("closed", closed.clone());
    assert_eq!(t.input_schema(), &closed);
    assert!(t.validate(&json!({ "x": 1 })).is_err());
    assert_eq!(t.validate(&Value::Null), Ok(()));
    let doc = server_doc(&[t]);
    assert_eq!(
        doc["paths"]["/closed"]["post"]["requestBody"]["required"],
        json!(false)
    );
}

/// A top level that is not an object is published as `{"input": …}`, and that object is what
/// goes upstream.
#[test]
fn non_object_top_level_is_wrapped() {
    let t = prep(
        "shout",
        json!({ "type": "string", "minLength": 2, "title": "Text" }),
    );
    assert!(t.wraps_body());
    assert!(t.body_required());
    assert_eq!(
        t.input_schema(),
        &json!({
            "type": "object",
            "properties": { "input": { "type": "string", "minLength": 2, "title": "Text" } },
            "required": ["input"],
            "additionalProperties": false
        })
    );
    assert_eq!(t.validate(&json!({ "input": "hey" })), Ok(()));
    assert_eq!(
        t.arguments(json!({ "input": "hey" })),
        json!({ "input": "hey" }).as_object().cloned().unwrap()
    );
    let err = t.validate(&json!({ "input": "h" })).unwrap_err();
    assert_eq!(err.instance_path(), "/input");
    let err = t.validate(&json!({})).unwrap_err();
    assert_eq!(
        err.message,
        "invalid arguments: \"input\" is a required property"
    );
    let err = t
        .validate(&json!({ "input": "hey", "other": 1 }))
        .unwrap_err();
    assert_eq!(err.instance_path(), "/other");

    let t = prep(
        "sum",
        json!({ "type": "array", "items": { "$ref": "#/$defs/N" }, "$defs": { "N": { "type": "number" } } }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/sum")["properties"]["input"],
        json!({ "type": "array", "items": { "$ref": "#/components/schemas/sum__N" } })
    );
    let err = t.validate(&json!({ "input": [1, "x"] })).unwrap_err();
    assert_eq!(err.instance_path(), "/input/1");
    // A top-level union of objects stays as it is.
    let union = json!({ "anyOf": [
        { "type": "object", "properties": { "a": { "type": "string" } }, "required": ["a"] },
        { "type": "object", "properties": { "b": { "type": "string" } }, "required": ["b"] }
    ] });
    let t = prep("either", union.clone());
    assert!(!t.wraps_body());
    assert_eq!(t.input_schema(), &union);
}

/// OpenAPI 3.0 `nullable` (3.1 has none) becomes a null type, and the validator agrees.
#[test]
fn nullable_becomes_null_type() {
    let t = prep(
        "legacy",
        json!({
            "type": "object",
            "properties": {
                "a": { "type": "string", "nullable": true },
                "b": { "$ref": "#/$defs/B", "nullable": true, "description": "a B" },
                "c": { "enum": ["x", "y"], "nullable": true },
                "d": { "type": "integer", "nullable": false },
                "e": { "anyOf": [{ "type": "string" }, { "type": "integer" }], "nullable": true }
            },
            "$defs": { "B": { "type": "integer" } }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/legacy")["properties"],
        json!({
            "a": { "type": ["string", "null"] },
            "b": { "description": "a B", "anyOf": [{ "$ref": "#/components/schemas/legacy__B" }, { "type": "null" }] },
            "c": { "enum": ["x", "y", null] },
            "d": { "type": "integer" },
            "e": { "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "null" }] }
        })
    );
    assert_eq!(
        t.validate(&json!({ "a": null, "b": null, "c": null, "e": null })),
        Ok(())
    );
    assert!(t.validate(&json!({ "d": null })).is_err());
}

/// Names with odd characters, JSON-pointer escapes, percent-encoding and nested `$defs`.
#[test]
fn names_escapes_and_nested_defs() {
    let t = prep(
        "my tool/v2",
        json!({
            "type": "object",
            "properties": {
                "a": { "$ref": "#/$defs/a~1b" },
                "b": { "$ref": "#/$defs/c~0d" },
                "c": { "$ref": "#/$defs/Foo%20Bar%3CT%3E" },
                "d": { "$ref": "#/$defs/Outer/$defs/Inner" },
                "e": { "$ref": "#/definitions/Foo Bar<T>" }
            },
            "$defs": {
                "a/b": { "type": "string" },
                "c~d": { "type": "integer" },
                "Foo Bar<T>": { "type": "boolean" },
                "Outer": { "type": "object", "$defs": { "Inner": { "type": "number" } }, "properties": { "i": { "$ref": "#/$defs/Outer/$defs/Inner" } } }
            },
            "definitions": { "Foo Bar<T>": { "type": "null" } }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    // Not a safe path segment: published under a safe name derived from it.
    let path = format!("/{}", t.published_name());
    assert!(
        path.starts_with("/my_tool_v2_") && path.len() == 20,
        "{path}"
    );
    assert_eq!(
        body_schema(&doc, &path)["properties"],
        json!({
            "a": { "$ref": "#/components/schemas/my_tool_v2__a_b" },
            "b": { "$ref": "#/components/schemas/my_tool_v2__c_d" },
            "c": { "$ref": "#/components/schemas/my_tool_v2__Foo_Bar_T_" },
            "d": { "$ref": "#/components/schemas/my_tool_v2__Inner" },
            "e": { "$ref": "#/components/schemas/my_tool_v2__Foo_Bar_T__2" }
        })
    );
    let s = schemas(&doc);
    assert_eq!(s["my_tool_v2__a_b"], json!({ "type": "string" }));
    assert_eq!(s["my_tool_v2__c_d"], json!({ "type": "integer" }));
    assert_eq!(s["my_tool_v2__Foo_Bar_T_"], json!({ "type": "boolean" }));
    assert_eq!(s["my_tool_v2__Foo_Bar_T__2"], json!({ "type": "null" }));
    assert_eq!(s["my_tool_v2__Inner"], json!({ "type": "number" }));
    assert_eq!(
        s["my_tool_v2__Outer"],
        json!({ "type": "object", "properties": { "i": { "$ref": "#/components/schemas/my_tool_v2__Inner" } } })
    );
    let op = &doc["paths"][path.as_str()]["post"];
    assert_eq!(op["operationId"], json!(t.published_name()));
    assert_eq!(op["x-mcp-tool"], json!("my tool/v2"));
    assert!(
        op["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("MCP tool name: `my tool/v2`")),
        "{op}"
    );
    assert!(t.validates());
    assert!(t.validate(&json!({ "c": "yes" })).is_err());
    assert_eq!(
        t.validate(&json!({ "a": "s", "b": 1, "c": true, "d": 1.5, "e": null })),
        Ok(())
    );
}

/// `$id`-based and anchor references resolve; `$id`/`$anchor` do not reach the document.
#[test]
fn id_and_anchor_refs() {
    let t = prep(
        "ids",
        json!({
            "$id": "https://example.com/tool.json",
            "type": "object",
            "properties": {
                "a": { "$ref": "https://example.com/tool.json#/$defs/A" },
                "b": { "$ref": "#node" }
            },
            "$defs": {
                "A": { "type": "string" },
                "N": { "$anchor": "node", "type": "integer" }
            }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/ids")["properties"],
        json!({
            "a": { "$ref": "#/components/schemas/ids__A" },
            "b": { "$ref": "#/components/schemas/ids__N" }
        })
    );
    assert_eq!(schemas(&doc)["ids__N"], json!({ "type": "integer" }));
    assert!(t.validate(&json!({ "b": "x" })).is_err());
}

/// Remote and dangling references: `{}` plus a note, never a panic; a remote one also turns
/// validation off (no network) with a warning.
#[test]
fn unresolvable_refs() {
    let t = prep(
        "remote",
        json!({
            "type": "object",
            "properties": {
                "a": { "$ref": "https://example.com/schemas/a.json", "description": "remote" },
                "b": { "$ref": "#/$defs/Missing" },
                "c": { "$ref": "#/properties" }
            }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/remote")["properties"],
        json!({
            "a": { "x-mcpo-unresolved-ref": "https://example.com/schemas/a.json", "description": "remote" },
            "b": { "x-mcpo-unresolved-ref": "#/$defs/Missing" },
            "c": { "x-mcpo-unresolved-ref": "#/properties" }
        })
    );
    assert!(!t.validates());
    assert_eq!(t.warnings().len(), 1);
    assert!(
        t.warnings()[0].starts_with("srv/remote: "),
        "{:?}",
        t.warnings()
    );
    assert_eq!(
        doc["paths"]["/remote"]["post"]["x-mcpo-warnings"],
        json!(t.warnings())
    );
    // Without a validator, only the object check remains.
    assert_eq!(t.validate(&json!({ "a": 1 })), Ok(()));
    assert!(t.validate(&json!("x")).is_err());
}

/// Data that looks like a reference is data: `default`, `enum`, `examples` and `const` are
/// copied as they are.
#[test]
fn data_is_not_rewritten() {
    let input = json!({
        "type": "object",
        "properties": {
            "x": {
                "type": "object",
                "default": { "$ref": "#/$defs/Nope" },
                "examples": [{ "$defs": { "a": 1 } }],
                "const": { "$id": "kept" }
            }
        }
    });
    let t = prep("data", input.clone());
    assert_eq!(t.input_schema(), &input);
}

/// A reference into a place that is no schema keyword (here an `x-` extension) is copied
/// into a component rather than cut out, so the extension keeps its data.
#[test]
fn ref_into_unknown_keyword_is_copied() {
    let t = prep(
        "shared",
        json!({
            "type": "object",
            "x-shared": { "Money": { "type": "number", "minimum": 0 } },
            "properties": { "price": { "$ref": "#/x-shared/Money" } }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/shared"),
        &json!({
            "type": "object",
            "x-shared": { "Money": { "type": "number", "minimum": 0 } },
            "properties": { "price": { "$ref": "#/components/schemas/shared__x-shared.Money" } }
        })
    );
    assert_eq!(
        schemas(&doc)["shared__x-shared.Money"],
        json!({ "type": "number", "minimum": 0 })
    );
    assert!(t.validate(&json!({ "price": -1 })).is_err());
}

/// Two tools with their own `$defs/Item` get their own components; tools whose names
/// sanitise alike get a numbered prefix; the combined document prefixes the server.
#[test]
fn component_collisions() {
    let with_item = |name: &str, ty: &str| {
        prep(
            name,
            json!({
                "type": "object",
                "properties": { "item": { "$ref": "#/$defs/Item" } },
                "$defs": { "Item": { "type": ty } }
            }),
        )
    };
    let tools = [
        with_item("first", "string"),
        with_item("second", "integer"),
        with_item("a b", "boolean"),
        with_item("a_b", "number"),
    ];
    let doc = server_doc(&tools);
    let s = schemas(&doc);
    assert_eq!(s["first__Item"], json!({ "type": "string" }));
    assert_eq!(s["second__Item"], json!({ "type": "integer" }));
    assert_eq!(s["a_b__Item"], json!({ "type": "boolean" }));
    assert_eq!(s["a_b_2__Item"], json!({ "type": "number" }));
    assert_eq!(
        body_schema(&doc, "/a_b")["properties"]["item"],
        json!({ "$ref": "#/components/schemas/a_b_2__Item" })
    );
    assert_eq!(
        body_schema(&doc, "/second")["properties"]["item"],
        json!({ "$ref": "#/components/schemas/second__Item" })
    );

    let other = [with_item("first", "null")];
    let combined = combined_document(
        &info(false),
        &[("srv", &tools[..2]), ("other-srv", &other[..])],
        |server, tool| format!("/{server}/{tool}"),
    );
    assert_refs_resolve(&combined);
    let s = schemas(&combined);
    assert_eq!(s["srv__first__Item"], json!({ "type": "string" }));
    assert_eq!(s["srv__second__Item"], json!({ "type": "integer" }));
    assert_eq!(s["other-srv__first__Item"], json!({ "type": "null" }));
    assert_eq!(
        body_schema(&combined, "/other-srv/first")["properties"]["item"],
        json!({ "$ref": "#/components/schemas/other-srv__first__Item" })
    );
    let ids: Vec<&Value> = ["/srv/first", "/srv/second", "/other-srv/first"]
        .iter()
        .map(|p| &combined["paths"][*p]["post"]["operationId"])
        .collect();
    assert_eq!(
        ids,
        [
            &json!("srv_first"),
            &json!("srv_second"),
            &json!("other-srv_first")
        ]
    );
    assert_eq!(
        combined["tags"],
        json!([{ "name": "srv" }, { "name": "other-srv" }])
    );
}

/// The output schema is normalised like the input; both share the tool's names.
#[test]
fn output_schema() {
    let t = prepare_tool(
        "srv",
        &tool_from(json!({
            "name": "lookup",
            "inputSchema": { "type": "object", "properties": { "q": { "$ref": "#/$defs/Item" } }, "$defs": { "Item": { "type": "string" } } },
            "outputSchema": {
                "type": "object",
                "properties": { "items": { "type": "array", "items": { "$ref": "#/$defs/Item" } } },
                "$defs": { "Item": { "type": "object", "properties": { "id": { "type": "integer" } } } }
            }
        })),
    );
    let doc = server_doc(&[t]);
    let ok = &doc["paths"]["/lookup"]["post"]["responses"]["200"];
    assert_eq!(
        ok["content"]["application/json"]["schema"],
        json!({
            "type": "object",
            "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/lookup__Item_2" } } }
        })
    );
    assert_eq!(schemas(&doc)["lookup__Item"], json!({ "type": "string" }));
    assert_eq!(
        schemas(&doc)["lookup__Item_2"],
        json!({ "type": "object", "properties": { "id": { "type": "integer" } } })
    );
}

// ---------------------------------------------------------------------------------------------
// Documents

#[test]
fn server_document_shape() {
    let annotated = tool_from(json!({
        "name": "get_time",
        "description": "Current time in a zone.",
        "inputSchema": { "type": "object", "properties": { "tz": { "type": "string" } } },
        "annotations": { "title": "Get time", "readOnlyHint": true, "openWorldHint": false }
    }));
    let titled = tool_from(json!({
        "name": "set_alarm",
        "title": "Set an alarm",
        "inputSchema": { "type": "object", "properties": { "at": { "type": "string" } }, "required": ["at"] },
        "annotations": { "title": "ignored", "destructiveHint": false }
    }));
    let plain = tool("ping", json!({}));
    let tools: Vec<PreparedTool> = [annotated, titled, plain]
        .iter()
        .map(|t| prepare_tool("clock", t))
        .collect();
    let doc = server_document(&info(true), "clock", &tools, |t| format!("/{t}"));
    assert_refs_resolve(&doc);

    assert_eq!(doc["openapi"], json!("3.1.0"));
    assert_eq!(
        doc["info"],
        json!({ "title": "Test server", "version": "1.2.3", "description": "Use these tools wisely." })
    );
    assert_eq!(doc["servers"], json!([{ "url": "/srv" }]));
    assert_eq!(doc["tags"], json!([{ "name": "clock" }]));
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
    assert_eq!(
        doc["components"]["securitySchemes"],
        json!({ "bearer": { "type": "http", "scheme": "bearer" } })
    );

    let op = &doc["paths"]["/get_time"]["post"];
    assert_eq!(op["operationId"], json!("get_time"));
    assert_eq!(op["summary"], json!("Get time"));
    assert_eq!(op["description"], json!("Current time in a zone."));
    assert_eq!(op["tags"], json!(["clock"]));
    assert_eq!(op["x-mcp-tool"], json!("get_time"));
    assert_eq!(
        op["x-mcp-annotations"],
        json!({ "title": "Get time", "readOnlyHint": true, "openWorldHint": false })
    );
    assert_eq!(op["requestBody"]["required"], json!(false));
    let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "422", "500", "502", "503", "504"
        ]
    );
    assert_eq!(
        op["responses"]["200"],
        json!({ "description": "Tool result", "content": { "application/json": { "schema": {} } } })
    );
    assert_eq!(
        op["responses"]["422"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/InvalidArguments" })
    );
    assert_eq!(
        op["responses"]["503"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/Error" })
    );

    let op = &doc["paths"]["/set_alarm"]["post"];
    assert_eq!(op["summary"], json!("Set an alarm"));
    assert_eq!(op["requestBody"]["required"], json!(true));
    assert!(op.get("description").is_none());
    let op = &doc["paths"]["/ping"]["post"];
    assert_eq!(op["summary"], json!("ping"));
    assert!(op.get("x-mcp-annotations").is_none());

    let open = server_document(&info(false), "clock", &tools, |t| format!("/{t}"));
    assert!(open.get("security").is_none());
    assert!(open["components"].get("securitySchemes").is_none());
    let statuses: Vec<&String> = open["paths"]["/ping"]["post"]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        statuses,
        ["200", "400", "404", "422", "500", "502", "503", "504"]
    );
}

/// Duplicate paths keep the first tool; duplicate operationIds get a number.
#[test]
fn duplicate_paths_and_operation_ids() {
    let tools = [prep("a", json!({})), prep("b", json!({}))];
    let doc = server_document(&info(false), "srv", &tools, |_| "/same".into());
    assert_eq!(doc["paths"].as_object().unwrap().len(), 1);
    assert_eq!(doc["paths"]["/same"]["post"]["operationId"], json!("a"));

    let x = [prep("b_c", json!({}))];
    let y = [prep("c", json!({}))];
    let doc = combined_document(&info(false), &[("a", &x[..]), ("a_b", &y[..])], |s, t| {
        format!("/{s}/{t}")
    });
    assert_eq!(
        doc["paths"]["/a/b_c"]["post"]["operationId"],
        json!("a_b_c")
    );
    assert_eq!(
        doc["paths"]["/a_b/c"]["post"]["operationId"],
        json!("a_b_c_2")
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn validation_collects_up_to_ten_issues() {
    let props: serde_json::Map<String, Value> = (0..12)
        .map(|i| (format!("p{i:02}"), json!({ "type": "integer" })))
        .collect();
    let t = prep("many", json!({ "type": "object", "properties": props }));
    let three: serde_json::Map<String, Value> =
        (0..3).map(|i| (format!("p{i:02}"), json!("x"))).collect();
    let err = t.validate(&Value::Object(three)).unwrap_err();
    assert_eq!(err.errors.len(), 3);
    assert!(!err.truncated);
    assert!(
        err.message.starts_with("3 invalid arguments: /p00: "),
        "{}",
        err.message
    );
    let paths: Vec<&str> = err
        .errors
        .iter()
        .map(|e| e.instance_path.as_str())
        .collect();
    assert_eq!(paths, ["/p00", "/p01", "/p02"]);
    assert_eq!(err.errors[1].schema_path, "/properties/p01/type");

    let all: serde_json::Map<String, Value> =
        (0..12).map(|i| (format!("p{i:02}"), json!("x"))).collect();
    let err = t.validate(&Value::Object(all)).unwrap_err();
    assert_eq!(err.errors.len(), 10);
    assert!(err.truncated);
    assert!(err.message.ends_with("; …"), "{}", err.message);

    let data = serde_json::to_value(&err).unwrap();
    assert_eq!(data["errors"][0]["instance_path"], json!("/p00"));
    assert_eq!(
        data["errors"][0]["schema_path"],
        json!("/properties/p00/type")
    );
    assert_eq!(data["truncated"], json!(true));
}

#[test]
fn long_values_are_cut_in_messages() {
    let t = prep(
        "short",
        json!({ "type": "object", "properties": { "s": { "type": "string", "maxLength": 3 } } }),
    );
    let err = t.validate(&json!({ "s": "x".repeat(10_000) })).unwrap_err();
    assert!(
        err.errors[0].message.chars().count() <= 301,
        "{}",
        err.errors[0].message.len()
    );
    assert!(err.errors[0].message.ends_with('…'));
}

/// Older-draft keyword forms that 2020-12 (OpenAPI 3.1) reads differently are rewritten in the
/// document; the validator still reads the original draft.
#[test]
fn older_draft_keywords_are_upgraded() {
    let t = prep(
        "old",
        json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {
                "n": { "type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false },
                "pair": { "type": "array", "items": [{ "type": "string" }, { "$ref": "#/properties/pair/items/0" }], "additionalItems": false }
            },
            "dependencies": { "a": ["b"], "c": { "required": ["d"] } }
        }),
    );
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/old"),
        &json!({
            "type": "object",
            "properties": {
                "n": { "type": "number", "exclusiveMinimum": 0, "maximum": 9 },
                "pair": {
                    "type": "array",
                    "prefixItems": [{ "$ref": "#/components/schemas/old__pair.items.0" }, { "$ref": "#/components/schemas/old__pair.items.0" }],
                    "items": false
                }
            },
            "dependentRequired": { "a": ["b"] },
            "dependentSchemas": { "c": { "required": ["d"] } }
        })
    );
    assert!(t.validates());
    assert!(t.validate(&json!({ "n": 0 })).is_err());
    assert!(t.validate(&json!({ "pair": ["a", "b", "c"] })).is_err());
    assert!(t.validate(&json!({ "a": 1 })).is_err());
    assert_eq!(
        t.validate(&json!({ "n": 0.5, "pair": ["a", "b"], "a": 1, "b": 2 })),
        Ok(())
    );
}

/// A top level that is only a `$ref` keeps the body required when the target requires keys.
#[test]
fn top_level_ref() {
    let t = prep(
        "wrapped_args",
        json!({
            "$ref": "#/$defs/Args",
            "$defs": { "Args": { "type": "object", "properties": { "q": { "type": "string" } }, "required": ["q"] } }
        }),
    );
    assert!(t.body_required());
    assert!(!t.wraps_body());
    let doc = server_doc(std::slice::from_ref(&t));
    assert_eq!(
        body_schema(&doc, "/wrapped_args"),
        &json!({ "$ref": "#/components/schemas/wrapped_args__Args" })
    );
    assert_eq!(t.validate(&json!({})).unwrap_err().instance_path(), "");
}

#[test]
fn prepared_tools_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PreparedTool>();
}
