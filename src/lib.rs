//! onebox: the classic "one server hosts a website" diagram as one runnable binary.
//!
//! A visit to `http://www.foobar.com/` crosses these layers, in this order, and each
//! has its own module:
//!
//! 1. [`dns`]: the authoritative DNS server. It answers `www.foobar.com A` with the
//!    CNAME `www → foobar.com` and then the apex **A** record, the only record that
//!    maps a name to an address.
//! 2. [`web`]: the web server (hyper) listening on that address. It picks the site by
//!    the `Host` name, serves static files itself and hands the rest to the app.
//! 3. [`app`]: the application server: accounts, sessions and posts, rendered as HTML
//!    or JSON.
//! 4. [`db`]: the database (redb), embedded and ACID. A request is acknowledged only
//!    after its transaction is durably committed.
//! 5. [`visit`]: the visitor. `onebox visit URL` walks the same path from the client
//!    side and reports every hop.
//!
//! [`serve`] wires them together: it binds every socket, hands each server its
//! sockets and one shutdown token, prints the ready line and turns signals into
//! reloads and a graceful stop. Nothing below it binds ports or catches signals.

pub(crate) mod app;
pub mod check;
pub mod cli;
pub(crate) mod db;
pub(crate) mod dns;
pub mod doctor;
pub mod serve;
pub mod visit;
pub(crate) mod web;
