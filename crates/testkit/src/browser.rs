//! A real headless Chromium for browser tests, driven over WebDriver.
//!
//! [`Browser::start`] runs Debian's `chromedriver` (`/usr/bin/chromedriver`) on a free loopback
//! port in its own process group and opens a session on `/usr/bin/chromium` with a fresh
//! profile directory and the flags a machine without outside network needs (no background
//! networking, component updates, sync or QUIC: otherwise Chromium stalls on lookups that are
//! refused). [`Browser::client`] is the [`fantoccini`] client; the helpers here wait on
//! JavaScript conditions, read the browser's console, and save PNG screenshots.
//!
//! A missing browser fails the test with the install hint ([`require_browser`]); it is never
//! skipped. `HOLDFAST_CHROMIUM` and `HOLDFAST_CHROMEDRIVER` point at other binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

pub const CHROMIUM_ENV: &str = "HOLDFAST_CHROMIUM";
pub const CHROMEDRIVER_ENV: &str = "HOLDFAST_CHROMEDRIVER";
const INSTALL_HINT: &str = "install Debian's Chromium and its WebDriver: \
     `apt-get install chromium chromium-driver` (scripts/test.sh and .ci/run do)";

/// The browser and driver binaries: from the environment, else Debian's paths.
pub fn require_browser() -> (PathBuf, PathBuf) {
    let pick = |env: &str, default: &str| {
        std::env::var_os(env)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick(CHROMIUM_ENV, "/usr/bin/chromium");
    let driver = pick(CHROMEDRIVER_ENV, "/usr/bin/chromedriver");
    for (what, p) in [("chromium", &chromium), ("chromedriver", &driver)] {
        assert!(
            p.is_file(),
            "holdfast-testkit: {what} not found at {}: {INSTALL_HINT}",
            p.display()
        );
    }
    (chromium, driver)
}

/// Window size and the like.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    pub width: u32,
    pub height: u32,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            width: 1280,
            height: 900,
        }
    }
}

/// A chromedriver process with one Chromium session. Dropping it kills both; call
/// [`Browser::close`] to end the session politely first.
pub struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    _profile: tempfile::TempDir,
    driver_log: PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        Self::start_with(BrowserOptions::default()).await
    }

    pub async fn start_with(opts: BrowserOptions) -> Browser {
        let (chromium, driver_bin) = require_browser();
        let profile = tempfile::Builder::new()
            .prefix("holdfast-chromium-")
            .tempdir()
            .expect("a temporary Chromium profile directory");
        let driver_log = profile.path().join("chromedriver.log");
        let port = crate::free_port();
        let mut cmd = Command::new(&driver_bin);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so Drop can end the driver and every browser process at once.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", driver_bin.display()));
        let mut b = Browser {
            client: None,
            driver: Some(driver),
            _profile: profile,
            driver_log,
        };
        let url = format!("http://127.0.0.1:{port}");
        b.wait_driver(port);

        let data_dir = b._profile.path().join("profile");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--user-data-dir={}", data_dir.display()),
            format!("--window-size={},{}", opts.width, opts.height),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": args}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .unwrap_or_else(|_| panic!("Chromium did not start within 60 s\n{}", b.driver_log()))
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}\n{}", b.driver_log()));
        b.client = Some(client);
        b.resize(opts.width, opts.height).await;
        b
    }

    fn wait_driver(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.driver.as_mut().unwrap().try_wait().unwrap() {
                panic!("chromedriver exited ({status})\n{}", self.driver_log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s\n{}",
                self.driver_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tail of chromedriver's log, for failure messages.
    pub fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("chromedriver log (tail):\n{}", &text[start..])
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a browser session")
    }

    /// Sets the viewport (the inner size) to `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client()
            .set_window_size(width, height)
            .await
            .expect("set the window size");
        // The window includes no chrome in headless mode, but make sure of the viewport.
        let inner = self
            .eval("return [window.innerWidth, window.innerHeight]", vec![])
            .await;
        let (w, h) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
        if (w, h) != (width as u64, height as u64) {
            let (dw, dh) = (width as i64 - w as i64, height as i64 - h as i64);
            self.client()
                .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
                .await
                .expect("set the window size");
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its
    /// value.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs an async script: the page calls `arguments[arguments.length - 1](value)` when done.
    pub async fn eval_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Polls the expression `condition` (JavaScript, evaluated in the page) until it is truthy,
    /// and returns its value; panics after `within` with `what`, the page's text and console.
    pub async fn wait_for(&self, what: &str, condition: &str, within: Duration) -> Value {
        let script = format!("try {{ return ({condition}); }} catch (e) {{ return null; }}");
        let deadline = Instant::now() + within;
        loop {
            let v = self
                .client()
                .execute(&script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let url = self
                    .client()
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let text = self
                    .client()
                    .execute(
                        "return document.body ? document.body.innerText : ''",
                        vec![],
                    )
                    .await
                    .unwrap_or(Value::Null);
                panic!(
                    "{what}: not within {within:?} (condition `{condition}`)\nat {url}\npage text:\n{}\nconsole:\n{}",
                    text.as_str().unwrap_or(""),
                    self.console().await.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching the CSS selector `css` and clicks it.
    pub async fn click(&self, css: &str, within: Duration) {
        let q = serde_json::to_string(css).unwrap();
        self.wait_for(
            &format!("clickable {css}"),
            &format!("(() => {{ const e = document.querySelector({q}); return !!e && !e.disabled && e.offsetParent !== null; }})()"),
            within,
        )
        .await;
        self.client()
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the input matching `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .client()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The browser console's messages since the last call (`LEVEL message` each): JavaScript
    /// errors, failed requests, `console.log`.
    pub async fn console(&self) -> Vec<String> {
        let Ok(v) = self.client().issue_cmd(BrowserLog).await else {
            return vec![];
        };
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport to `path` (its directory is created).
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is no PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A PNG of the whole page (the viewport grown to the document's height, then restored).
    pub async fn screenshot_full(&self, path: &Path) {
        let size = self
            .eval(
                "return [window.innerWidth, window.innerHeight, Math.ceil(document.documentElement.scrollHeight)]",
                vec![],
            )
            .await;
        let (w, h, full) = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
            size[2].as_u64().unwrap() as u32,
        );
        if full > h {
            self.resize(w, full.min(4000)).await;
        }
        self.screenshot(path).await;
        if full > h {
            self.resize(w, h).await;
        }
    }

    /// Ends the session (Chromium quits) and the driver.
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
        }
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut d) = self.driver.take() {
            let pgid = d.id() as i32;
            // SAFETY: signalling the process group we created for the driver.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type": "browser"}`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}
