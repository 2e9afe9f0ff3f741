//! The application server box: the site's logic (accounts, sessions, posts).
