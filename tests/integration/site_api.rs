//! Proves the application server on the real binary: the JSON API with every
//! status it promises, HTML escaping of hostile posts, CSRF rejection of forms,
//! and sessions that really expire.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

fn error_of(r: &Response) -> String {
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {}", r.text()))
        .to_string()
}

#[test]
fn users_201_409_422_400() {
    let server = Onebox::start();
    let ok = r#"{"username":"ann_1","password":"correct horse"}"#;
    let r = api(&server, "POST", "/api/v1/users", &[], ok);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["username"], "ann_1");
    let r = api(&server, "POST", "/api/v1/users", &[], ok);
    assert_eq!(r.status, 409);
    assert!(error_of(&r).contains("taken"));
    for bad in [
        r#"{"username":"an","password":"correct horse"}"#,
        r#"{"username":"Ann","password":"correct horse"}"#,
        r#"{"username":"ann!","password":"correct horse"}"#,
        r#"{"username":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","password":"correct horse"}"#,
        r#"{"username":"bob","password":"short"}"#,
        r#"{"username":"bob"}"#,
        r#"{"username":"bob","password":12345678}"#,
        r#"["bob","correct horse"]"#,
    ] {
        let r = api(&server, "POST", "/api/v1/users", &[], bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        error_of(&r);
    }
    for malformed in [r#"{"username":"bob","#, "", "not json"] {
        let r = api(&server, "POST", "/api/v1/users", &[], malformed);
        assert_eq!(r.status, 400, "{malformed}: {}", r.text());
        error_of(&r);
    }
}

#[test]
fn sessions_201_401_and_204() {
    let server = Onebox::start();
    let creds = r#"{"username":"ann","password":"correct horse"}"#;
    let r = sign_up(&server, creds);
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 40);
    let cookie_header = r
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("onebox_session="))
        .unwrap()
        .to_string();
    assert_contains_all(&cookie_header, &["HttpOnly", "SameSite=Lax"]);
    assert!(
        !cookie_header.contains("Secure"),
        "plain HTTP: {cookie_header}"
    );
    assert_eq!(
        r.cookie("onebox_session").unwrap(),
        format!("onebox_session={token}")
    );

    for wrong in [
        r#"{"username":"ann","password":"wrong horse"}"#,
        r#"{"username":"nobody","password":"correct horse"}"#,
    ] {
        let r = api(&server, "POST", "/api/v1/sessions", &[], wrong);
        assert_eq!(r.status, 401);
        assert_eq!(error_of(&r), "wrong username or password");
    }
    assert_eq!(
        api(&server, "POST", "/api/v1/sessions", &[], "{").status,
        400
    );
    assert_eq!(
        api(&server, "POST", "/api/v1/sessions", &[], "{}").status,
        422
    );

    let bearer = format!("Bearer {token}");
    let post = |auth: &str| {
        api(
            &server,
            "POST",
            "/api/v1/posts",
            &[("Authorization", auth)],
            r#"{"body":"hi"}"#,
        )
    };
    assert_eq!(post(&bearer).status, 201);
    let r = api(
        &server,
        "DELETE",
        "/api/v1/sessions",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(post(&bearer).status, 401, "the token is gone after logout");
    // Logging out again is still 204.
    assert_eq!(
        api(&server, "DELETE", "/api/v1/sessions", &[], "").status,
        204
    );
}

#[test]
fn posts_201_401_422_400_and_listing() {
    let server = Onebox::start();
    let token = user_token(&server, "ann");
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    let r = api(&server, "POST", "/api/v1/posts", &[], r#"{"body":"hi"}"#);
    assert_eq!(r.status, 401);
    error_of(&r);
    let r = api(
        &server,
        "POST",
        "/api/v1/posts",
        &[("Authorization", "Bearer nope")],
        r#"{"body":"hi"}"#,
    );
    assert_eq!(r.status, 401);

    let max = "é".repeat(2000);
    for (body, status) in [
        (serde_json::json!({"body": "x"}).to_string(), 201),
        (serde_json::json!({"body": max}).to_string(), 201),
        (
            serde_json::json!({"body": format!("{max}x")}).to_string(),
            422,
        ),
        (serde_json::json!({"body": ""}).to_string(), 422),
        (serde_json::json!({"body": "   \n"}).to_string(), 422),
        (serde_json::json!({"body": 5}).to_string(), 422),
        (serde_json::json!({"text": "x"}).to_string(), 422),
        ("{\"body\":".to_string(), 400),
        ("<b>hi</b>".to_string(), 400),
    ] {
        let r = api(&server, "POST", "/api/v1/posts", &auth, &body);
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            &body[..body.len().min(40)],
            r.text()
        );
        if status == 201 {
            assert!(r.json()["id"].as_u64().is_some());
        } else {
            error_of(&r);
        }
    }

    // 12 more, then page through newest first.
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = api(
            &server,
            "POST",
            "/api/v1/posts",
            &auth,
            &format!(r#"{{"body":"post {i}"}}"#),
        );
        ids.push(r.json()["id"].as_u64().unwrap());
    }
    let r = api(&server, "GET", "/api/v1/posts", &[], "");
    assert_eq!(r.status, 200);
    let all = r.json()["posts"].as_array().unwrap().clone();
    assert_eq!(all.len(), 14);
    let listed: Vec<u64> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest first: {listed:?}"
    );
    assert_eq!(all[0]["body"], "post 11");
    assert_eq!(all[0]["author"], "ann");
    assert!(all[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // The ids on one page of the list.
    let ids_at = |path: &str| -> Vec<u64> {
        let r = api(&server, "GET", path, &[], "");
        let posts = r.json()["posts"].as_array().unwrap().clone();
        posts.iter().map(|p| p["id"].as_u64().unwrap()).collect()
    };
    let page = ids_at("/api/v1/posts?limit=5");
    assert_eq!(page, listed[..5]);
    let page2 = ids_at(&format!("/api/v1/posts?limit=5&before={}", page[4]));
    assert_eq!(page2, listed[5..10]);
    assert_eq!(
        api(&server, "GET", "/api/v1/posts?limit=1000", &[], "").status,
        200
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "limit=-1",
        "before=0",
        "before=abc",
    ] {
        let r = api(&server, "GET", &format!("/api/v1/posts?{bad}"), &[], "");
        assert_eq!(r.status, 422, "{bad}");
        error_of(&r);
    }

    // Errors outside the handlers are JSON too.
    let r = api(&server, "PUT", "/api/v1/posts", &auth, "{}");
    assert_eq!(r.status, 405);
    error_of(&r);
    let r = api(&server, "GET", "/api/v1/nothing", &[], "");
    assert_eq!(r.status, 404);
    error_of(&r);
}

#[test]
fn cookie_authenticated_api_writes_need_json_content_type() {
    let server = Onebox::start();
    let creds = r#"{"username":"ann","password":"correct horse"}"#;
    let cookie = sign_up(&server, creds).cookie("onebox_session").unwrap();
    let r = api(
        &server,
        "POST",
        "/api/v1/posts",
        &[("Cookie", &cookie)],
        r#"{"body":"with cookie"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // What a cross-site <form enctype="text/plain"> could send.
    let r = http(
        server.http,
        "POST",
        "/api/v1/posts",
        "foobar.com",
        &[("Cookie", &cookie), ("Content-Type", "text/plain")],
        br#"{"body":"forged"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    error_of(&r);
    // A browser's cross-site request is refused before it reaches the app.
    let r = api(
        &server,
        "POST",
        "/api/v1/posts",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        r#"{"body":"forged"}"#,
    );
    assert_eq!(r.status, 403);
    error_of(&r);
    let bodies: Vec<String> = api(&server, "GET", "/api/v1/posts", &[], "").json()["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["with cookie"]);
}

#[test]
fn script_in_a_post_is_shown_as_text() {
    let server = Onebox::start();
    let token = user_token(&server, "mallory");
    let evil = r#"<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes""#;
    let r = post_as(
        &server,
        &token,
        &serde_json::json!({ "body": evil }).to_string(),
    );
    assert_eq!(r.status, 201);
    let page = http_get(&server, "foobar.com", "/").text();
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot;"), "{page}");
    // The API returns the text exactly as posted.
    let r = api(&server, "GET", "/api/v1/posts", &[], "");
    assert_eq!(r.json()["posts"][0]["body"], evil);
}

/// A browser session through the HTML forms: the cookies it was given and the
/// CSRF token of the last page it loaded that had a form.
#[derive(Default)]
struct Browser {
    cookies: Vec<String>,
    csrf: String,
}

/// ann's registration and login form.
const ANN_FORM: &str = "username=ann&password=correct+horse";

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies.join("; ")
    }

    fn keep(&mut self, r: &Response) {
        for name in ["onebox_csrf", "onebox_session"] {
            if let Some(c) = r.cookie(name) {
                self.cookies.retain(|k| !k.starts_with(&format!("{name}=")));
                self.cookies.push(c);
            }
        }
    }

    /// Loads a page, keeping its cookies and its form's CSRF token; its text.
    fn get(&mut self, server: &Onebox, path: &str) -> String {
        let r = http_get_with(
            server,
            "www.foobar.com",
            path,
            &[("Cookie", &self.cookie_header())],
        );
        self.keep(&r);
        let page = r.text();
        if page.contains("name=\"csrf\"") {
            self.csrf = csrf_field(&page);
        }
        page
    }

    fn post_form(&mut self, server: &Onebox, path: &str, form: &str) -> Response {
        let r = http(
            server.http,
            "POST",
            path,
            "www.foobar.com",
            &[
                ("Cookie", &self.cookie_header()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        )
        .unwrap();
        self.keep(&r);
        r
    }

    /// Posts `form` with the last page's CSRF token added, as the form sends it;
    /// the answer's status.
    fn submit(&mut self, server: &Onebox, path: &str, form: &str) -> u16 {
        let token = format!("csrf={}", self.csrf);
        let form = [form, &token].join(if form.is_empty() { "" } else { "&" });
        self.post_form(server, path, &form).status
    }
}

#[test]
fn forms_work_with_their_csrf_token_and_fail_without() {
    let server = Onebox::start();
    let mut browser = Browser::default();
    browser.get(&server, "/register");
    assert!(browser.cookie_header().contains("onebox_csrf="));

    // No token, a wrong token, or the right token without its cookie: 403.
    let r = browser.post_form(&server, "/register", ANN_FORM);
    assert_eq!(r.status, 403);
    let r = browser.post_form(&server, "/register", &format!("{ANN_FORM}&csrf=AAAA"));
    assert_eq!(r.status, 403);
    let mut stranger = Browser {
        csrf: browser.csrf.clone(),
        ..Browser::default()
    };
    assert_eq!(stranger.submit(&server, "/register", ANN_FORM), 403);
    // The account was not created by any of them.
    assert_eq!(
        api(
            &server,
            "POST",
            "/api/v1/sessions",
            &[],
            r#"{"username":"ann","password":"correct horse"}"#
        )
        .status,
        401
    );

    // With the token: registered, logged in, redirected to the board.
    let r = browser.post_form(
        &server,
        "/register",
        &format!("{ANN_FORM}&csrf={}", browser.csrf),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/"));
    let page = browser.get(&server, "/");
    assert_contains(&page, "signed in as <strong>@ann</strong>");

    let r = browser.post_form(&server, "/posts", "body=no+token");
    assert_eq!(r.status, 403);
    let hello = "body=Hello+%3Cb%3Eworld%3C%2Fb%3E";
    assert_eq!(browser.submit(&server, "/posts", hello), 303);
    let page = browser.get(&server, "/");
    assert_contains(&page, "Hello &lt;b&gt;world&lt;/b&gt;");
    assert_eq!(browser.submit(&server, "/posts", "body=+"), 422);

    // A cross-site form post carrying a valid token is still refused by Origin.
    let r = http(
        server.http,
        "POST",
        "/posts",
        "www.foobar.com",
        &[
            ("Cookie", &browser.cookie_header()),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://evil.example"),
        ],
        format!("body=forged&csrf={}", browser.csrf).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403);

    let r = browser.post_form(&server, "/logout", "");
    assert_eq!(r.status, 403, "logout needs the token too");
    assert_eq!(browser.submit(&server, "/logout", ""), 303);
    assert!(!browser.get(&server, "/").contains("signed in as"));

    browser.get(&server, "/login");
    let wrong = "username=ann&password=wrong+horse";
    assert_eq!(browser.submit(&server, "/login", wrong), 401);
    assert_eq!(browser.submit(&server, "/login", ANN_FORM), 303);
    assert!(browser.get(&server, "/").contains("signed in as"));
}

#[test]
fn sessions_expire() {
    let server = Onebox::start_with(&["--ephemeral"], &[("ONEBOX_SESSION_TTL_SECS", "2")]);
    let token = user_token(&server, "ann");
    let bearer = format!("Bearer {token}");
    let post = || {
        api(
            &server,
            "POST",
            "/api/v1/posts",
            &[("Authorization", &bearer)],
            r#"{"body":"hi"}"#,
        )
    };
    assert_eq!(post().status, 201);
    // Bounded wait: poll until the session has expired (it must within ~3 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let status = post().status;
        if status != 201 || std::time::Instant::now() > deadline {
            break status;
        }
    };
    assert_eq!(status, 401);
    let creds = r#"{"username":"ann","password":"ann-password"}"#;
    let r = api(&server, "POST", "/api/v1/sessions", &[], creds);
    assert!(
        r.headers_named("set-cookie")
            .iter()
            .any(|c| c.contains("Max-Age=2"))
    );
}
