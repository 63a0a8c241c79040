#!/usr/bin/env python3
"""A headless "browser" for mcpo's OAuth tests (standard library only).

mcpo runs it like a browser, with the authorization URL as the last argument. It keeps
cookies, follows redirects itself, signs in on oidc-provider's development login form (any
login and password), approves the consent form (or cancels, with --deny), and finally opens
the loopback redirect URI with the code, as a real browser would. It only ever visits
loopback hosts. The URL may also be mcpo's multi-user login link, whose confirmation page it
submits ("Continue") on the way to the authorization server: the redirect URI is then taken
from the first URL that names one. Form submissions carry the `Origin` and `Sec-Fetch-Site`
headers a browser sends, and like Chrome and Safari it holds a form's submission and the
redirects that follow it to the page's CSP `form-action` (exit 5 when blocked).

Options (before the URL):
  --record FILE           append one JSON line per invocation (tests count logins with it)
  --log FILE              append what it did, step by step
  --deny                  press "Cancel" on the authorization server's first page: it
                          answers access_denied
  --wrong-state-first     first deliver the callback with a forged `state`, then the real one
  --print-callback FILE   write the final callback URL to FILE instead of opening it (the
                          manual copy/paste flow)
  --login NAME            the account to sign in as (default: alice)
  --strict                exit 4 when the callback page answers with an error status
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


class FormParser(HTMLParser):
    """The first form on the page (action, method, inputs) and the links."""

    def __init__(self) -> None:
        super().__init__()
        self.form: dict | None = None
        self.in_form = False
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.form is None:
            self.form = {"action": a.get("action", ""), "method": a.get("method", "get"), "inputs": {}}
            self.in_form = True
        elif tag == "input" and self.in_form and a.get("name"):
            self.form["inputs"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self._href = a["href"]

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False
        if tag == "a":
            self._href = None

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links.append((data.strip(), self._href))


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def submit_headers(page_url: str, action: str, page_headers: dict) -> dict:
    """What a browser adds to a form POST: where it comes from."""
    same = origin_of(page_url) == origin_of(action)
    # The page's referrer policy decides how much of the origin is told (Fetch "serialize a
    # request origin"): nothing (`null`) under no-referrer, and cross-origin under same-origin.
    policy = page_headers.get("referrer-policy", "").split(",")[-1].strip().lower()
    hidden = policy == "no-referrer" or (policy == "same-origin" and not same)
    return {
        "Origin": "null" if hidden else origin_of(page_url),
        "Sec-Fetch-Site": "same-origin" if same else "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }


def form_action_of(page_url: str, csp: str) -> tuple[str, list[str]] | None:
    """The page's origin and its `form-action` sources, or None without that directive."""
    for directive in csp.split(";"):
        words = directive.split()
        if words and words[0].lower() == "form-action":
            return origin_of(page_url), words[1:]
    return None


def allowed_by(policy: tuple[str, list[str]], url: str) -> bool:
    """Whether `url` matches a `form-action` source list ('self', scheme-only, host
    sources with an optional port and path; enough for the pages these tests meet)."""
    page_origin, sources = policy
    parts = urllib.parse.urlsplit(url)
    for source in sources:
        s = source.lower()
        if s == "'none'":
            continue
        if s == "'self'":
            if origin_of(url) == page_origin:
                return True
            continue
        if s.endswith(":") and "/" not in s:
            if parts.scheme == s[:-1]:
                return True
            continue
        if "://" in s:
            expected = urllib.parse.urlsplit(s)
            if origin_of(url) == origin_of(s) and parts.path.startswith(expected.path or "/"):
                return True
    return False


def main(argv: list[str]) -> int:
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv) - 1:
        name = argv[i]
        if name in ("--deny", "--wrong-state-first", "--strict"):
            opts[name] = True
            i += 1
        elif name in ("--record", "--log", "--print-callback", "--login"):
            opts[name] = argv[i + 1]
            i += 2
        else:
            break
    url = argv[-1]

    def log(msg: str) -> None:
        if opts.get("--log"):
            with open(opts["--log"], "a", encoding="utf-8") as f:
                f.write(f"{time.time():.3f} {msg}\n")

    if opts.get("--record"):
        with open(opts["--record"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"at": time.time(), "url": url}) + "\n")

    def redirect_uri_of(target: str) -> str:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("redirect_uri", [""])[0]

    # Without one, the URL must redirect to the authorization server (mcpo's login link).
    redirect_uri = redirect_uri_of(url)

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar), NoRedirect()
    )

    def fetch(target: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
        host = urllib.parse.urlsplit(target).hostname or ""
        if host not in LOOPBACK:
            raise SystemExit(f"refusing to visit non-loopback URL {target}")
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with opener.open(urllib.request.Request(target, data=body, headers=headers or {}), timeout=15) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode("utf-8", "replace")

    def deliver(callback: str) -> int:
        """GET the loopback callback, waiting for the listener for up to 20 s."""
        deadline = time.time() + 20
        while True:
            try:
                status, _, body = fetch(callback)
                text = re.sub(r"<[^>]+>", " ", body)
                log(f"callback answered {status}: {' '.join(text.split())[:200]}")
                return status
            except (urllib.error.URLError, ConnectionError) as e:
                if time.time() > deadline:
                    log(f"callback unreachable: {e}")
                    return 0
                time.sleep(0.2)

    current = url
    denied = False
    # The `form-action` sources of the page whose form the browser is navigating away from
    # (None: no form submission under way, or no such directive on its page).
    form_action: tuple[str, list[str]] | None = None
    for _ in range(30):
        if form_action is not None and not allowed_by(form_action, current):
            log(f"CSP form-action of the form's page blocks {current.split('?')[0]}")
            return 5
        if not redirect_uri:
            redirect_uri = redirect_uri_of(current)
        if redirect_uri and current.startswith(redirect_uri):
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(current).query).get("code", [""])[0]
            # Tests check that mcpo never logs the code; they read it here.
            log(f"code={code}")
            if opts.get("--print-callback"):
                with open(opts["--print-callback"], "w", encoding="utf-8") as f:
                    f.write(current)
                log("wrote callback URL")
                return 0
            if opts.get("--wrong-state-first"):
                parts = urllib.parse.urlsplit(current)
                query = [(k, "forged-state" if k == "state" else v) for k, v in urllib.parse.parse_qsl(parts.query)]
                forged = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
                log("delivering a forged state first")
                deliver(forged)
            status = deliver(current)
            if opts.get("--strict") and not 200 <= status < 300:
                return 4
            return 0
        status, headers, body = fetch(current)
        location = headers.get("Location") or headers.get("location")
        log(f"GET/POST {current.split('?')[0]} -> {status}")
        if 300 <= status < 400 and location:
            current = urllib.parse.urljoin(current, location)
            continue
        form_action = None
        if status != 200:
            log(f"unexpected status {status}: {' '.join(re.sub(r'<[^>]+>', ' ', body).split())[:300]}")
            return 1
        page = FormParser()
        page.feed(body)
        if not redirect_uri and page.form is None:
            log(f"no redirect_uri on the way to {current.split('?')[0]}")
            return 2
        confirming = page.form is not None and "ticket" in page.form["inputs"]
        if opts.get("--deny") and not denied and not confirming:
            cancel = next((href for text, href in page.links if "Cancel" in text), None)
            if cancel is None:
                log("no Cancel link on the page")
                return 1
            denied = True
            current = urllib.parse.urljoin(current, cancel)
            continue
        if page.form is None:
            log(f"no form on the page: {body[:300]}")
            return 1
        fields = dict(page.form["inputs"])
        if "login" in fields or "password" in fields:
            fields["login"] = opts.get("--login") or "alice"
            fields["password"] = "secret"
        action = urllib.parse.urljoin(current, page.form["action"])
        page_headers = {k.lower(): v for k, v in headers.items()}
        form_action = form_action_of(current, page_headers.get("content-security-policy", ""))
        if form_action is not None and not allowed_by(form_action, action):
            log(f"CSP form-action blocks submitting to {action.split('?')[0]}")
            return 5
        status, headers, body = fetch(action, fields, submit_headers(current, action, page_headers))
        location = headers.get("Location") or headers.get("location")
        log(f"submitted {fields.get('prompt', 'form')} -> {status}")
        if not (300 <= status < 400 and location):
            log(f"form submit did not redirect: {status} {body[:300]}")
            return 1
        current = urllib.parse.urljoin(action, location)
    log("too many steps")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
