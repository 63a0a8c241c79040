//! #19 item 14: `--root-path` is written into the docs pages' inline script; markup in it must
//! stay inside the string literal it belongs to.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn root_path_cannot_end_the_docs_page_script() {
    let hostile = "</script><script>alert(1)</script>";
    let bridge = start_config(
        json!({ "fx": fixture_stdio_entry() }),
        &["--root-path", hostile],
    );
    let mcpo = &bridge.mcpo;
    for path in ["/docs", "/fx/docs"] {
        let page = get(mcpo, path, None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert!(
            !page.text.contains("</script><script>alert(1)"),
            "{path}: the root path ended the page's script:\n{}",
            page.text
        );
        // Swagger UI's own three script elements, and no other.
        assert_eq!(page.text.matches("</script>").count(), 3, "{}", page.text);
        assert!(
            page.text
                .contains(r"\u003c/script\u003e\u003cscript\u003ealert(1)"),
            "{path}: the spec URL is still given, escaped:\n{}",
            page.text
        );
    }
}
