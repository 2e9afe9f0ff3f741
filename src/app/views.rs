//! The HTML, as maud templates: compiled with the binary and escaped by default, so
//! a post containing `<script>` is shown as text, never run. No JavaScript: every
//! page works with plain links and forms.

use std::borrow::Cow;
use std::sync::Arc;

use maud::{DOCTYPE, Markup, html};

use super::rfc3339;
use crate::db::Post;
use crate::dns::ChainLink;

/// What every page's frame needs.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) title: &'a str,
    pub(crate) host: &'a str,
    pub(crate) user: Option<&'a str>,
    pub(crate) csrf: &'a str,
}

/// Why a page's visit was not counted; the page is served all the same.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NotCounted {
    /// The disk holding the database is full.
    DiskFull,
    /// The database takes no writes now (a PostgreSQL primary is down).
    NoWrites,
}

/// The facts for "How this page reached you", all measured on this request.
#[derive(Debug)]
pub(crate) struct Reached {
    pub(crate) host: String,
    pub(crate) chain: Arc<[ChainLink]>,
    pub(crate) peer: Option<String>,
    pub(crate) local: Option<String>,
    /// Whether the A/AAAA address DNS gives is the address that accepted us.
    pub(crate) local_is_dns_address: Option<bool>,
    pub(crate) protocol: Cow<'static, str>,
    pub(crate) tls: bool,
    pub(crate) route: String,
    /// The database engine: "redb", "PostgreSQL 15".
    pub(crate) db_name: Arc<str>,
    pub(crate) db_reads: u32,
    pub(crate) db_writes: u32,
    pub(crate) db_ms: String,
    pub(crate) so_far_ms: String,
    /// The HTTP implementation that answered ("hyper", or the web server's own loop).
    pub(crate) web_server: &'static str,
    /// The visit counter, or why it could not be written this time.
    pub(crate) visits: Result<u64, NotCounted>,
    /// How the toy Internet's resolver found the name for this client, when it did.
    pub(crate) resolution: Option<super::ResolutionPath>,
    /// `--node-name`: which of several nodes built this page.
    pub(crate) node: Option<String>,
    /// The recent changes to our zones, newest first.
    pub(crate) changes: Vec<String>,
}

pub(crate) fn page(frame: &Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · " (frame.host) }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/site.css";
            }
            body {
                header.top {
                    div.wrap.bar {
                        a.brand href="/" {
                            img src="/favicon.svg" alt="" width="28" height="28";
                            span { (frame.host) }
                        }
                        nav {
                            @if let Some(user) = frame.user {
                                span.who { "signed in as " strong { "@" (user) } }
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(frame.csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            } @else {
                                a href="/login" { "Log in" }
                                a.button.small href="/register" { "Join" }
                            }
                        }
                    }
                }
                main.wrap { (body) }
                footer.wrap {
                    p {
                        "Served by " strong { "onebox" } ": DNS, web server, application and database in one process. "
                        a href="/api/v1/posts?limit=10" { "JSON API" } " · "
                        a href="/readyz" { "readiness" }
                    }
                }
            }
        }
    }
}

pub(crate) fn home(
    frame: &Frame<'_>,
    posts: &[Post],
    older: Option<u64>,
    paged: bool,
    error: Option<&str>,
    draft: &str,
    panel: Markup,
) -> Markup {
    page(
        frame,
        html! {
            section.hero {
                p.eyebrow { "A community board on one server" }
                h1 { "Hello from " span.host { (frame.host) } }
                p.lede {
                    "Register, log in and post a short message for everyone to read. "
                    "The panel shows exactly how this page reached you."
                }
            }
            div.grid {
                div.col {
                    @if let Some(user) = frame.user {
                        form.card.compose method="post" action="/posts" {
                            label for="body" { "Post as " strong { "@" (user) } }
                            textarea #body name="body" rows="3" maxlength="2000" required
                                placeholder="Say something nice…" { (draft) }
                            input type="hidden" name="csrf" value=(frame.csrf);
                            @if let Some(error) = error { p.error role="alert" { (error) } }
                            div.actions {
                                span.hint { "Up to 2000 characters." }
                                button type="submit" { "Post" }
                            }
                        }
                    } @else {
                        div.card.cta {
                            p { "Want to join the conversation?" }
                            div.actions {
                                a.button href="/register" { "Create an account" }
                                a href="/login" { "Log in" }
                            }
                        }
                    }
                    section.posts aria-labelledby="latest" {
                        h2 #latest { @if paged { "Older posts" } @else { "Latest posts" } }
                        @if posts.is_empty() {
                            p.empty { "No posts yet. Be the first to say hello." }
                        }
                        ol.feed {
                            @for post in posts {
                                li.post id={ "post-" (post.id) } {
                                    div.avatar aria-hidden="true" { (initial(&post.author)) }
                                    div.content {
                                        div.meta {
                                            strong { "@" (post.author) }
                                            " · "
                                            time datetime=(rfc3339(post.created_at)) { (friendly_time(post.created_at)) }
                                            span.id { "#" (post.id) }
                                        }
                                        p.body { (post.body) }
                                    }
                                }
                            }
                        }
                        nav.pager {
                            @if paged { a href="/" { "← Newest" } }
                            @if let Some(older) = older {
                                a href={ "/?before=" (older) } { "Older posts →" }
                            }
                        }
                    }
                }
                aside.col.side { (panel) }
            }
        },
    )
}

/// "How this page reached you": rendered for every request, since every fact in
/// it is this request's own.
pub(crate) fn reached_panel(r: &Reached) -> Markup {
    html! {
        section.card.reached aria-labelledby="reached" {
            h2 #reached { "How this page reached you" }
            ol.steps {
                li {
                    span.step { "Name" }
                    p { "You asked for " code { (r.host) } "." }
                }
                @if let Some(path) = &r.resolution {
                    li {
                        span.step { "Resolver" }
                        p {
                            "Your resolver (onebox's, " (path.seconds_ago) " s ago) "
                            @if path.from_cache {
                                "answered " strong { "from its cache" } "."
                                @if !path.asked.is_empty() { " It had learnt the name by asking:" }
                            } @else {
                                "found the name by asking, from the root down:"
                            }
                        }
                        @if !path.asked.is_empty() {
                            ol.resolution {
                                @for (zone, server) in &path.asked {
                                    li {
                                        @if zone == "." { "the root " } @else { code { (zone) } " " }
                                        "at " code { (server) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !r.changes.is_empty() {
                    li {
                        span.step { "Changes" }
                        p { "Our zones changed while onebox ran (newest first):" }
                        ul.changes {
                            @for change in &r.changes { li { code { (change) } } }
                        }
                    }
                }
                li {
                    span.step { "DNS" }
                    p { "Our zone, read live as this page was built:" }
                    @if r.chain.is_empty() {
                        p.warn { "No records for this name in our zone." }
                    }
                    ul.chain {
                        @for link in r.chain.iter() {
                            li {
                                code.name { (link.name) }
                                span.rr {
                                    span.rtype { (link.rtype) }
                                    " → "
                                    code { (link.data) }
                                    span.ttl { "TTL " (link.ttl) }
                                }
                            }
                        }
                    }
                    @if r.chain.iter().any(|l| l.rtype == "CNAME") {
                        p.note {
                            "A CNAME maps a name to another " em { "name" } ". "
                            "Only the A record maps a name to an address."
                        }
                    }
                }
                li {
                    span.step { "Connection" }
                    p {
                        @if let Some(peer) = &r.peer { "From " code { (peer) } " to " }
                        @if let Some(local) = &r.local { code { (local) } }
                        ", " strong { (r.protocol) } ", "
                        @if r.tls { "TLS." } @else { "no TLS (plain TCP)." }
                    }
                    @if r.local_is_dns_address == Some(false) {
                        p.note { "This address is not the one DNS gives for the name: the server was started with --http." }
                    }
                    @if let Some(node) = &r.node {
                        // One text node, so "served by node1" is greppable in the HTML.
                        p.node { (format!("This page was served by {node} (its --node-name; every response names it in the Onebox-Node header).")) }
                    }
                }
                li {
                    span.step { "Layers" }
                    ul.layers {
                        li { span.lname { "Web server" } span { (r.web_server) ", " (r.so_far_ms) " ms" } }
                        li { span.lname { "Application" } code { (r.route) } }
                        li {
                            span.lname { "Database" }
                            span {
                                (&*r.db_name) ", " (r.db_reads) " " (plural(r.db_reads, "read", "reads")) ", "
                                (r.db_writes) " " (plural(r.db_writes, "write", "writes"))
                                ", " (r.db_ms) " ms"
                            }
                        }
                    }
                    p.hint { "Times up to this page being rendered; the whole request's are in the Server-Timing header (browser dev tools, Network tab)." }
                }
                li {
                    span.step { "Visits" }
                    @match r.visits {
                        Ok(visits) => p {
                            code { (r.host) } " has been visited "
                            strong { (visits) } " " (plural_u64(visits, "time", "times"))
                            ", a counter the database had saved before this page was sent (on disk, unless onebox runs "
                            code { "--ephemeral" } ")."
                        },
                        Err(NotCounted::DiskFull) => p {
                            "Not counted this time: the disk holding the database is full, so nothing can be written. Reading still works."
                        },
                        Err(NotCounted::NoWrites) => p {
                            "Not counted this time: the database takes no writes right now (its primary is down), so this page was read from a replica. Posting waits for a new primary."
                        },
                    }
                }
            }
            img.stack src="/static/stack.svg" alt="DNS, web server, application server and database: the four boxes of one server" width="320" height="120";
        }
    }
}

pub(crate) fn account_form(
    frame: &Frame<'_>,
    register: bool,
    username: &str,
    error: Option<&str>,
) -> Markup {
    let (heading, action, button) = if register {
        ("Create an account", "/register", "Create account")
    } else {
        ("Log in", "/login", "Log in")
    };
    page(
        frame,
        html! {
            section.narrow {
                form.card.account method="post" action=(action) {
                    h1 { (heading) }
                    @if let Some(error) = error { p.error role="alert" { (error) } }
                    label for="username" { "Username" }
                    input #username name="username" value=(username) required
                        autocomplete="username" autocapitalize="none" spellcheck="false"
                        pattern="[a-z0-9_\\-]{3,32}" minlength="3" maxlength="32";
                    @if register { p.hint { "3–32 characters: a–z, 0–9, _ and -." } }
                    label for="password" { "Password" }
                    input #password type="password" name="password" required minlength="8"
                        autocomplete=(if register { "new-password" } else { "current-password" });
                    @if register { p.hint { "At least 8 characters." } }
                    input type="hidden" name="csrf" value=(frame.csrf);
                    button type="submit" { (button) }
                    p.switch {
                        @if register { "Already have an account? " a href="/login" { "Log in" } }
                        @else { "New here? " a href="/register" { "Create an account" } }
                    }
                }
            }
        },
    )
}

pub(crate) fn message(frame: &Frame<'_>, heading: &str, text: &str) -> Markup {
    page(
        frame,
        html! {
            section.narrow.card.message {
                h1 { (heading) }
                p { (text) }
                p { a href="/" { "← Back to the board" } }
            }
        },
    )
}

fn initial(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_ascii_uppercase().to_string())
        .unwrap_or_default()
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn plural_u64(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `2026-11-26 06:54 UTC`: readable without JavaScript or a time-zone guess.
fn friendly_time(secs: u64) -> String {
    let full = rfc3339(secs);
    format!("{} {} UTC", &full[..10], &full[11..16])
}
