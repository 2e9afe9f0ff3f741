-- onebox schema 1: the same four tables the redb backend keeps, as SQL tables.
-- Times are Unix seconds (bigint), as in redb; token hashes are SHA-256 (bytea).
CREATE TABLE users (
    username      text   PRIMARY KEY,
    password_hash text   NOT NULL,
    created_at    bigint NOT NULL
);

CREATE TABLE sessions (
    token_hash bytea  PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    username   text   NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Ids are handed out by onebox_post_seq below, not by a sequence: a sequence's
-- values are taken before commit, so id 5 could become visible before id 4, and
-- a rolled-back insert leaves a gap. The row lock on onebox_post_seq makes ids
-- follow commit order, as they do on redb.
CREATE TABLE posts (
    id         bigint PRIMARY KEY CHECK (id > 0),
    author     text   NOT NULL,
    body       text   NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE onebox_post_seq (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_id  bigint  NOT NULL
);
INSERT INTO onebox_post_seq (only_row, last_id) VALUES (true, 0);

CREATE TABLE counters (
    host   text   PRIMARY KEY,
    visits bigint NOT NULL CHECK (visits >= 0)
);
