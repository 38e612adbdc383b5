//! The console's serving (content types, CSP, caching) over a real loopback listener, and static
//! checks of the embedded files: every file is served, every module import resolves, no inline
//! script or style, no external origin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router::<()>()).await.unwrap();
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name} header", r.url()))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn pages_are_html_with_a_strict_policy_and_no_store() {
    let base = serve().await;
    for path in ["/", "/index.html", "/login"] {
        let r = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(
            header(&r, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        let body = r.text().await.unwrap();
        assert!(body.starts_with("<!doctype html>"), "{path}");
    }
    let csp = CONTENT_SECURITY_POLICY;
    for d in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(d), "the policy lacks {d}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_an_etag() {
    let base = serve().await;
    for a in ASSETS {
        let url = format!("{base}/assets/{}", a.path);
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let want = match a.path.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("no type expected for .{other}"),
        };
        assert_eq!(header(&r, "content-type"), want, "{url}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{url}");
        assert!(header(&r, "content-security-policy").contains("script-src 'self'"));
        let etag = header(&r, "etag").to_string();
        assert_eq!(r.bytes().await.unwrap().as_ref(), a.body, "{url}");

        // Revalidation: the same tag answers 304 without a body, another tag the file.
        let r = client()
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{url}");
        assert_eq!(header(&r, "etag"), etag);
        assert!(r.bytes().await.unwrap().is_empty());
        let r = client()
            .get(&url)
            .header("if-none-match", "\"stale\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn unknown_assets_are_404_and_paths_do_not_escape() {
    let base = serve().await;
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/js/../../src/lib.rs",
        "/assets/%2e%2e/Cargo.toml",
    ] {
        let r = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_role_table_is_served_from_permits() {
    let base = serve().await;
    let r = client()
        .get(format!("{base}/assets/roles.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let names = |role: &str| -> BTreeSet<String> {
        v[role]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("admin").len(), Action::ALL.len());
    assert_eq!(
        names("auditor"),
        BTreeSet::from(["read".to_string(), "read-audit".to_string()])
    );
    assert!(names("operator").contains("trigger-job"));
    assert!(!names("operator").contains("manage-users"));
    assert!(!names("operator").contains("restore-production"));
    // Every name the console's scripts ask `can(…)` about is an action of the table.
    let all = names("admin");
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(a.body).unwrap();
        for (i, _) in text.match_indices("can('") {
            let rest = &text[i + 5..];
            let name = &rest[..rest.find('\'').unwrap()];
            assert!(all.contains(name), "{}: can('{name}') is no action", a.path);
        }
    }
    let index = std::str::from_utf8(INDEX.body).unwrap();
    for (i, _) in index.match_indices("data-needs=\"") {
        let rest = &index[i + 12..];
        let name = &rest[..rest.find('"').unwrap()];
        assert!(
            all.contains(name),
            "index.html: data-needs={name} is no action"
        );
    }
}

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
}

fn files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, base, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

#[test]
fn every_file_of_the_console_is_embedded() {
    let mut on_disk = BTreeSet::new();
    files(&console_dir(), &console_dir(), &mut on_disk);
    let mut embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
    embedded.insert(INDEX.path.to_string());
    embedded.insert(LOGIN.path.to_string());
    assert_eq!(on_disk, embedded, "add new console files to ASSETS");
}

/// `import … from './x.js'` resolved against `from`'s directory.
fn imports(from: &str, text: &str) -> Vec<String> {
    let dir = Path::new(from).parent().unwrap().to_path_buf();
    text.lines()
        .filter(|l| l.starts_with("import "))
        .map(|l| {
            let q = l.rfind(['\'', '"']).unwrap();
            let start = l[..q].rfind(['\'', '"']).unwrap();
            let mut p = dir.clone();
            for part in l[start + 1..q].split('/') {
                match part {
                    "." => {}
                    ".." => {
                        p.pop();
                    }
                    x => p.push(x),
                }
            }
            p.display().to_string()
        })
        .collect()
}

#[test]
fn every_module_import_resolves_to_an_embedded_asset() {
    let served: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
    let mut seen = 0;
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        for target in imports(a.path, std::str::from_utf8(a.body).unwrap()) {
            assert!(
                served.contains(target.as_str()),
                "{} imports {target}, which is not served",
                a.path
            );
            seen += 1;
        }
    }
    assert!(
        seen > 20,
        "only {seen} imports found: is the parser broken?"
    );
    // And the pages load scripts and styles from /assets/ only.
    for page in [&INDEX, &LOGIN] {
        let text = std::str::from_utf8(page.body).unwrap();
        for attr in ["src=\"", "href=\""] {
            for (i, _) in text.match_indices(attr) {
                let rest = &text[i + attr.len()..];
                let url = &rest[..rest.find('"').unwrap()];
                if let Some(path) = url.strip_prefix("/assets/") {
                    assert!(served.contains(path), "{}: {url} is not served", page.path);
                } else {
                    assert!(url.starts_with('#'), "{}: {url} leaves /assets/", page.path);
                }
            }
        }
    }
}

#[test]
fn no_inline_script_style_or_external_origin() {
    let all = ASSETS.iter().chain([&INDEX, &LOGIN]);
    for a in all {
        let text = std::str::from_utf8(a.body).unwrap();
        // The SVG namespace is a name, not a request.
        let scrubbed = text.replace("http://www.w3.org/2000/svg", "");
        for bad in [
            "http://",
            "https://",
            "//cdn",
            "innerHTML",
            "outerHTML",
            "eval(",
        ] {
            assert!(!scrubbed.contains(bad), "{} contains {bad}", a.path);
        }
        if a.path.ends_with(".html") {
            for (i, _) in text.match_indices("<script") {
                let tag = &text[i..i + text[i..].find('>').unwrap()];
                assert!(tag.contains(" src=\"/assets/"), "{}: inline {tag}", a.path);
            }
            for bad in [" style=\"", "<style", " onclick=", " onload=", " onsubmit="] {
                assert!(!text.contains(bad), "{} contains {bad}", a.path);
            }
        }
    }
}
