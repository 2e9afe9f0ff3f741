//! `/_onebox/api/history/dns`: the recent DNS questions, behind the admin token,
//! under the live view's privacy rules, and bounded however many questions come.

use std::net::UdpSocket;
use std::time::Duration;

use crate::harness::*;

const HISTORY: &str = "/_onebox/api/history/dns";
/// The ring's documented size (`crate::live::QUESTIONS`).
const CAPACITY: usize = 1000;

fn history(server: &Onebox, query: &str) -> serde_json::Value {
    let auth = format!("Bearer {}", server.admin_token());
    let answer = api(
        server,
        "GET",
        &format!("{HISTORY}{query}"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[test]
fn dyn_history_lists_the_questions_dig_asked() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = Onebox::start();
    assert_eq!(api(&server, "GET", HISTORY, &[], "").status, 401);
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(api(&server, "GET", HISTORY, &wrong, "").status, 401);

    server.dig(&["asked.foobar.com", "TXT"]);
    server.dig(&["+tcp", "other.foobar.com", "A"]);
    server.dig(&["www.example.org", "A"]);

    let asked = history(&server, "?name=Asked.foobar.com.");
    let questions = asked["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 1, "{asked}");
    let q = &questions[0];
    assert_eq!(
        q["name"].as_str().unwrap().trim_end_matches('.'),
        "asked.foobar.com"
    );
    assert_eq!(q["type"], "TXT");
    assert_eq!(q["transport"], "udp");
    assert!(
        q["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{q}"
    );
    assert!(q["time"].as_str().unwrap().ends_with('Z'), "{q}");
    assert_eq!(asked["capacity"], CAPACITY);

    let all = history(&server, "");
    let all = all["questions"].as_array().unwrap();
    // Newest first; a name outside our zones is hidden, as in the live view.
    let names: Vec<&str> = all.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "(outside our zones)");
    assert_eq!(all[1]["transport"], "tcp");
    assert!(
        !names.iter().any(|n| n.contains("example.org")),
        "{names:?}"
    );
}

#[test]
fn dyn_history_stays_bounded_under_a_burst_of_questions() {
    let server = Onebox::start();
    let before = server.rss_kib();
    // 8 clients × 500 questions, each for its own name: four times the ring.
    std::thread::scope(|scope| {
        for client in 0..8 {
            let dns = server.dns_addr();
            scope.spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut buf = [0u8; 1500];
                for i in 0..500 {
                    let name = format!("q{client}-{i}.foobar.com");
                    let packet = encode(&query(&name, hickory_server::proto::rr::RecordType::A));
                    socket.send_to(&packet, dns).unwrap();
                    let _ = socket.recv_from(&mut buf);
                }
            });
        }
    });
    let all = history(&server, "");
    let questions = all["questions"].as_array().unwrap();
    assert_eq!(questions.len(), CAPACITY, "the ring holds exactly its size");
    // The newest are kept: the last question of some client is there.
    assert!(
        questions
            .iter()
            .any(|q| q["name"].as_str().unwrap().starts_with("q")
                && q["name"].as_str().unwrap().contains("-499.")),
        "{}",
        questions[0]
    );
    let after = server.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB under 4000 questions"
    );
}
