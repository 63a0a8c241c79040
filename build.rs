//! Compresses the Swagger UI files the `/docs` pages load, once, at build time.
//!
//! The files come from the Swagger UI release zip vendored by `utoipa-swagger-ui-vendored` (a
//! crate that holds nothing else), so building needs no network. Only what our docs page loads
//! is kept (the CSS, the bundle, the standalone preset and the two favicons), gzipped at the
//! highest level: ~0.5 MiB in the binary instead of the 4.1 MiB of the whole `dist` folder
//! that `utoipa-swagger-ui` embedded uncompressed. `src/http/swagger.rs` serves them.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

/// The files our page (`src/http/docs.rs`, `docs_page`) refers to, plus the favicons browsers ask for.
const FILES: &[(&str, &str)] = &[
    ("favicon-16x16.png", "image/png"),
    ("favicon-32x32.png", "image/png"),
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    (
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
    ),
    ("swagger-ui.css", "text/css; charset=utf-8"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut zip =
        zip::ZipArchive::new(Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED))
            .expect("the vendored Swagger UI zip opens");
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.expect("zip entry names are UTF-8").into_owned())
        .collect();
    // `swagger-ui-5.32.6/dist/…`: the folder names the version, which goes into the ETags.
    let version = names
        .iter()
        .find_map(|n| n.strip_prefix("swagger-ui-")?.split('/').next())
        .expect("the zip's top folder is swagger-ui-<version>")
        .to_owned();
    let mut table = String::new();
    for (file, content_type) in FILES {
        let name = names
            .iter()
            .find(|n| n.ends_with(&format!("/dist/{file}")))
            .unwrap_or_else(|| panic!("the vendored Swagger UI has no dist/{file}"));
        let mut plain = Vec::new();
        zip.by_name(name)
            .and_then(|mut f| Ok(f.read_to_end(&mut plain)?))
            .unwrap_or_else(|e| panic!("cannot read {name} from the Swagger UI zip: {e}"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&plain).expect("gzip into memory");
        let gz = gz.finish().expect("gzip into memory");
        std::fs::write(out.join(format!("{file}.gz")), &gz).expect("write into OUT_DIR");
        table.push_str(&format!(
            "    Asset {{ name: {file:?}, content_type: {content_type:?}, len: {len}, \
             gzip: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}.gz\")) }},\n",
            len = plain.len()
        ));
    }
    let generated = format!(
        "/// The Swagger UI release the assets come from.\n\
         pub const VERSION: &str = {version:?};\n\
         /// Sorted by name (binary search).\n\
         static ASSETS: &[Asset] = &[\n{table}];\n"
    );
    std::fs::write(out.join("swagger_ui_assets.rs"), generated).expect("write into OUT_DIR");
}
