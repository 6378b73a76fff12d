//! The web UI over HTTPS without a browser (issue 17, item 4): destructive
//! forms ask before acting, a sensor's retried errors are one row, the
//! registrations page follows a pending sensor's attempts, and "last
//! error: none" is not shown as an error.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::harness::{frame, wait_for, Raw, Sensor, Server, KEY};
use crate::web_api::{csrf, logged_in, Browser};

/// An admin logged in whose first password is changed.
fn admin<'a>(s: &'a Server) -> Browser<'a> {
    let (pw, _) = s.admin_credentials();
    let mut b = logged_in(s, "admin", &pw);
    let (_, _, page) = b.get("/password");
    let t = csrf(&page);
    let (code, ..) = b.post(
        "/password",
        &[
            ("csrf", &t),
            ("current", &pw),
            ("new", "correct horse battery staple"),
            ("confirm", "correct horse battery staple"),
        ],
    );
    assert_eq!(code, 303);
    b
}

/// Posts `form` to `path` twice: first it must answer the confirmation page
/// (200, nothing done: `undone` holds), then, confirmed, redirect (303).
fn ask_then_do(b: &mut Browser, path: &str, form: &[(&str, &str)], undone: impl Fn() -> bool) {
    let (code, _, page, _) = b.post(path, form);
    assert_eq!(code, 200, "{path}: {page}");
    assert!(page.contains("id=\"confirm\""), "{path}: {page}");
    assert!(
        page.contains(&format!("action=\"{path}\"")),
        "{path}: {page}"
    );
    assert!(undone(), "{path} acted before it was confirmed");
    let mut again: Vec<(&str, &str)> = form.to_vec();
    again.push(("confirmed", "yes"));
    let (code, ..) = b.post(path, &again);
    assert_eq!(code, 303, "{path} confirmed");
    assert!(!undone(), "{path} did nothing once confirmed");
}

#[test]
fn delete_empty_and_block_ask_before_acting() {
    let s = Server::start(&[]);
    let (_, k) = s.admin_credentials();
    let mut b = admin(&s);
    let (_, _, page) = b.get("/server");
    let t = csrf(&page);
    let exists = |path: &str| s.call("GET", path, Some(&k), None).0 == 200;

    let q = s.create_queue("3", &[]);
    let path = format!("/queues/{q}/delete");
    ask_then_do(&mut b, &path, &[("csrf", &t)], || {
        exists(&format!("/queues/{q}"))
    });

    let q = s.create_queue("3", &[]);
    let path = format!("/queues/{q}/empty");
    let (code, ..) = b.post(&path, &[("csrf", &t)]);
    assert_eq!(code, 200, "asks");
    let (code, loc, ..) = b.post(&path, &[("csrf", &t), ("confirmed", "yes")]);
    assert_eq!((code, loc.as_str()), (303, "/server"));

    let u = Uuid::new_v4().simple().to_string();
    let blocked = |u: &str| {
        let v = s.call("GET", "/blocklist", Some(&k), None).1.to_string();
        v.contains(u) || Uuid::parse_str(u).is_ok_and(|x| v.contains(&x.to_string()))
    };
    ask_then_do(
        &mut b,
        &format!("/sensors/{u}/block"),
        &[("csrf", &t)],
        || !blocked(&u),
    );
    let u2 = Uuid::new_v4().simple().to_string();
    ask_then_do(
        &mut b,
        "/server/block-uuid",
        &[("csrf", &t), ("uuid", &u2)],
        || !blocked(&u2),
    );
    ask_then_do(
        &mut b,
        "/server/block-ip",
        &[("csrf", &t), ("net", "198.51.100.0/24")],
        || !blocked("198.51.100.0/24"),
    );

    let (code, _) = s.call(
        "POST",
        "/users",
        Some(&k),
        Some(json!({"name": "ops", "role": "user", "password": "first password"})),
    );
    assert_eq!(code, 201);
    ask_then_do(&mut b, "/users/ops/delete", &[("csrf", &t)], || {
        s.call("GET", "/users", Some(&k), None)
            .1
            .to_string()
            .contains("\"ops\"")
    });

    // A wrong CSRF token is refused before any question.
    let (code, ..) = b.post(&format!("/queues/{q}/delete"), &[("csrf", "nope")]);
    assert_eq!(code, 403);
}

#[test]
fn a_sensors_retries_are_one_error_row_and_none_is_not_red() {
    let s = Server::start(&[]);
    let mut b = admin(&s);
    let u = Uuid::new_v4();
    for _ in 0..10 {
        let mut c = Raw::connect(&s, None);
        c.write(&frame(u, 3, b"not the key", b"line\n"));
        assert!(c.closed_by_server());
    }
    let page = wait_for("ten errors", Duration::from_secs(20), || {
        let (_, _, page) = b.get(&format!("/sensors/{}", u.simple()));
        page.contains("<td class=\"num\">10</td>").then_some(page)
    });
    let table = &page[page.find("id=\"error-groups\"").expect("errors table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(
        table.matches("<tr>").count(),
        2,
        "a header and one row: {table}"
    );
    assert!(table.contains("127.0.0.1"));
    assert!(page.contains("<td class=\"err\" id=\"last-error\">"));

    // A sensor with no error: "none", not in red.
    let good = Sensor::new(&s, 3);
    good.send(b"hello\n");
    let (_, _, page) = b.get(&format!("/sensors/{}", good.uuid.simple()));
    assert!(
        page.contains("<td class=\"muted\" id=\"last-error\">none</td>"),
        "{page}"
    );
    assert!(page.contains("No error recorded"));
}

/// The `YYYY-MM-DD HH:MM:SS` cells of the pending row of `u`.
fn attempt_times(page: &str, u: &Uuid) -> Vec<String> {
    let i = page
        .find(&format!("<a href=\"/sensors/{}\">", u.simple()))
        .expect("the pending row");
    let row = &page[i..i + page[i..].find("</tr>").unwrap()];
    row.split("<td>")
        .filter_map(|c| c.split("</td>").next())
        .filter(|c| c.len() == 19 && c.as_bytes()[4] == b'-' && c.as_bytes()[13] == b':')
        .map(str::to_string)
        .collect()
}

#[test]
fn registrations_show_a_pending_sensors_last_attempt() {
    let s = Server::start(&["--mode", "registration"]);
    let mut b = admin(&s);
    let u = Uuid::new_v4();
    let attempt = || {
        let mut c = Raw::connect(&s, None);
        c.write(&frame(u, 3, KEY.as_bytes(), b"line\n"));
        assert!(c.closed_by_server());
    };
    attempt();
    let (_, _, page) = b.get("/registrations");
    let first = attempt_times(&page, &u);
    assert_eq!(first.len(), 2, "first and last attempt: {first:?}");
    assert_eq!(first[0], first[1]);
    std::thread::sleep(Duration::from_millis(1100));
    attempt();
    let (_, _, page) = b.get("/registrations");
    let now = attempt_times(&page, &u);
    assert_eq!(now[0], first[0], "the first attempt stays");
    assert!(now[1] > first[1], "the last attempt moves: {now:?}");
}
