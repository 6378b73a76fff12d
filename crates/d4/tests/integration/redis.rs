//! Redis mode: the queue backend in the reference key schema against a real
//! `redis-server` (started on a free loopback port; `ci.sh` installs it),
//! checked with plain Redis commands as the reference analyzers issue them,
//! and the server with `--store redis://`.

use d4_server::queues::QueueType;
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn reference_schema_and_plain_rpop_in_order() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let q = r.queues().await;
    let d = q
        .create(QueueType::Type(8), "pdns".into(), 100, vec![])
        .await
        .unwrap();
    let id = d.uuid.to_string();
    assert_eq!(r.cli(0, &["HGET", &format!("analyzer:{id}"), "type"]), "8");
    assert_eq!(
        r.cli(0, &["HGET", &format!("analyzer:{id}"), "max_size"]),
        "100"
    );
    assert_eq!(r.cli(0, &["SISMEMBER", "analyzer:8", &id]), "1");
    assert_eq!(r.cli(0, &["SISMEMBER", "all_analyzer_queues", &id]), "1");
    let sensor = Uuid::new_v4();
    q.push(&QueueType::Type(8), sensor, &[b"one".as_slice(), b"two"])
        .await
        .unwrap();
    q.push(&QueueType::Type(8), sensor, &[b"three".as_slice()])
        .await
        .unwrap();
    let key = format!("analyzer:8:{id}");
    assert_eq!(r.cli(2, &["LLEN", &key]), "3");
    for want in ["one", "two", "three"] {
        assert_eq!(r.cli(2, &["RPOP", &key]), want);
    }
    let d = q.get(d.uuid).await.unwrap().unwrap();
    assert_eq!((d.pushed, d.dropped, d.len()), (3, 0, 0));
}

#[tokio::test]
async fn max_size_groups_and_extended_types() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let q = r.queues().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let all = q
        .create(QueueType::Type(3), String::new(), 2, vec![])
        .await
        .unwrap();
    let only_a = q
        .create(QueueType::Type(3), String::new(), 10, vec![a])
        .await
        .unwrap();
    let mal = q
        .create(
            QueueType::Extended("maltrail".into()),
            String::new(),
            10,
            vec![b],
        )
        .await
        .unwrap();
    let id = |d: &d4_server::queues::QueueDef| d.uuid.to_string();
    assert_eq!(
        r.cli(0, &["SISMEMBER", "analyzer_uuid_group:3", &id(&only_a)]),
        "1"
    );
    assert_eq!(
        r.cli(
            0,
            &[
                "SISMEMBER",
                &format!("sensor:queues:3:{}", a.simple()),
                &id(&only_a)
            ]
        ),
        "1"
    );
    assert_eq!(
        r.cli(0, &["HGET", &format!("analyzer:{}", id(&mal)), "type"]),
        "254"
    );
    assert_eq!(
        r.cli(0, &["HGET", &format!("analyzer:{}", id(&mal)), "metatype"]),
        "maltrail"
    );
    assert_eq!(
        r.cli(
            0,
            &["SISMEMBER", "analyzer_uuid_group:254:maltrail", &id(&mal)]
        ),
        "1"
    );

    q.push(&QueueType::Type(3), a, &[b"a1".as_slice(), b"a2", b"a3"])
        .await
        .unwrap();
    q.push(&QueueType::Type(3), b, &[b"b1".as_slice()])
        .await
        .unwrap();
    q.push(
        &QueueType::Extended("maltrail".into()),
        b,
        &[b"m1".as_slice()],
    )
    .await
    .unwrap();
    q.push(
        &QueueType::Extended("maltrail".into()),
        a,
        &[b"not for the group".as_slice()],
    )
    .await
    .unwrap();
    // The all-sensors queue keeps its newest 2 of 4 and counts the drops.
    let d = q.get(all.uuid).await.unwrap().unwrap();
    assert_eq!((d.len(), d.dropped, d.pushed), (2, 2, 4));
    assert_eq!(
        q.pop(all.uuid, 10).await.unwrap(),
        vec![b"a3".to_vec(), b"b1".to_vec()]
    );
    // The group queue got sensor a's lines only.
    assert_eq!(q.pop(only_a.uuid, 10).await.unwrap().len(), 3);
    // An extended-type group queue receives data (the reference's never did).
    assert_eq!(
        r.cli(2, &["RPOP", &format!("analyzer:maltrail:{}", id(&mal))]),
        "m1"
    );
    assert_eq!(
        r.cli(2, &["LLEN", &format!("analyzer:maltrail:{}", id(&mal))]),
        "0"
    );

    // Resize trims at once and counts; delete removes every key.
    q.push(&QueueType::Type(3), b, &[b"x".as_slice(), b"y", b"z"])
        .await
        .unwrap();
    let d = q.resize(only_a.uuid, 1).await.unwrap();
    assert_eq!(d.max_size, 1);
    q.delete(only_a.uuid).await.unwrap();
    assert_eq!(
        r.cli(0, &["EXISTS", &format!("analyzer:{}", id(&only_a))]),
        "0"
    );
    assert_eq!(
        r.cli(0, &["SISMEMBER", "analyzer_uuid_group:3", &id(&only_a)]),
        "0"
    );
    assert_eq!(
        r.cli(
            0,
            &[
                "SISMEMBER",
                &format!("sensor:queues:3:{}", a.simple()),
                &id(&only_a)
            ]
        ),
        "0"
    );
    assert_eq!(q.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_queue_made_by_a_reference_tool_is_used_and_listed() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let q = r.queues().await;
    let id = Uuid::new_v4().to_string();
    r.cli(
        0,
        &[
            "HSET",
            &format!("analyzer:{id}"),
            "type",
            "1",
            "max_size",
            "5",
        ],
    );
    r.cli(0, &["SADD", "analyzer:1", &id]);
    r.cli(0, &["SADD", "all_analyzer_queues", &id]);
    q.push(
        &QueueType::Type(1),
        Uuid::new_v4(),
        &[b"/data/x.cap.gz".as_slice()],
    )
    .await
    .unwrap();
    assert_eq!(
        r.cli(2, &["RPOP", &format!("analyzer:1:{id}")]),
        "/data/x.cap.gz"
    );
    let l = q.list().await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].ty.clone(), l[0].max_size), (QueueType::Type(1), 5));
}

#[tokio::test]
async fn read_holds_a_batch_until_acknowledged() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let q = r.queues().await;
    let d = q
        .create(QueueType::Type(8), String::new(), 100, vec![])
        .await
        .unwrap();
    let s = Uuid::new_v4();
    let items: Vec<Vec<u8>> = (0..5).map(|i| format!("l{i}").into_bytes()).collect();
    q.push(&QueueType::Type(8), s, &items).await.unwrap();
    let first = q.read(d.uuid, 2).await.unwrap();
    assert_eq!(first, items[..2]);
    // Not acknowledged (the consumer died): the same batch again.
    assert_eq!(q.read(d.uuid, 3).await.unwrap(), items[..2]);
    assert_eq!(
        q.get(d.uuid).await.unwrap().unwrap().len(),
        5,
        "held items still count"
    );
    q.ack(d.uuid).await.unwrap();
    assert_eq!(q.read(d.uuid, 10).await.unwrap(), items[2..]);
    q.ack(d.uuid).await.unwrap();
    assert!(q.read(d.uuid, 10).await.unwrap().is_empty());
}

#[test]
fn server_in_redis_mode_lines_and_capture_paths_popped_with_plain_rpop() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    // Queues made through the CLI (the API) land in the reference schema.
    let q8 = s.create_queue("8", &[]);
    let q1 = s.create_queue("1", &[]);
    assert_eq!(r.cli(0, &["HGET", &format!("analyzer:{q8}"), "type"]), "8");
    assert_eq!(r.cli(0, &["SISMEMBER", "analyzer:1", &q1]), "1");
    let lines = "1322849924.408856||10.1.1.1||8.8.8.8||IN||a.example.||A||192.0.2.1||60||1\n\
1322849925.000001||10.1.1.1||8.8.8.8||IN||b.example.||A||192.0.2.2||60||1\n\
1322849926.000002||10.1.1.1||8.8.8.8||IN||c.example.||A||192.0.2.3||60||1\n";
    let sensor8 = Sensor::new(&s, 8);
    sensor8.send(lines.as_bytes());
    let key8 = format!("analyzer:8:{q8}");
    wait_for(
        "3 lines in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key8]) == "3").then_some(()),
    );
    for want in lines.lines() {
        assert_eq!(r.cli(2, &["RPOP", &key8]), want, "in the order sent");
    }
    // Sensor metadata and daily statistics in the reference schema (frames counted).
    let u = sensor8.uuid.simple().to_string();
    let date = chrono::Utc::now().format("%Y%m%d").to_string();
    wait_for(
        "sensor metadata in Redis",
        std::time::Duration::from_secs(20),
        || {
            (!r.cli(0, &["HGET", &format!("metadata_uuid:{u}"), "last_seen"])
                .is_empty())
            .then_some(())
        },
    );
    assert!(!r
        .cli(0, &["HGET", &format!("metadata_uuid:{u}"), "first_seen"])
        .is_empty());
    assert_eq!(
        r.cli(0, &["SISMEMBER", &format!("all_types_by_uuid:{u}"), "8"]),
        "1"
    );
    let frames: f64 = r
        .cli(0, &["ZSCORE", &format!("daily_uuid:{date}"), &u])
        .parse()
        .unwrap();
    assert!(frames >= 1.0);
    assert!(!r
        .cli(0, &["ZSCORE", &format!("daily_type:{date}"), "8"])
        .is_empty());
    assert!(!r
        .cli(
            0,
            &["ZSCORE", &format!("stat_uuid_ip:{date}:{u}"), "127.0.0.1"]
        )
        .is_empty());
    // A type-1 session's finished file: its path, popped the same way, is a readable .cap.gz.
    let cap = synthetic_pcap(200);
    Sensor::new(&s, 1).send(&cap);
    let key1 = format!("analyzer:1:{q1}");
    wait_for(
        "a file path in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key1]) == "1").then_some(()),
    );
    let path = r.cli(2, &["RPOP", &key1]);
    assert!(path.ends_with(".cap.gz"), "{path}");
    let mut pcap = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()),
        &mut pcap,
    )
    .unwrap();
    assert_eq!(packets(&pcap), packets(&cap));
    // The API (d4 stdout, d4 queue list) reads the same queues.
    Sensor::new(&s, 8).send(b"one more\n");
    wait_for(
        "queue length via the API",
        std::time::Duration::from_secs(20),
        || (s.queue_len(&q8) == 1).then_some(()),
    );
    assert_eq!(s.drain("8", &q8, &["-n"]), b"one more\n");
    let list = String::from_utf8(s.d4_ok(&["queue", "list"])).unwrap();
    assert!(list.contains(&q1) && list.contains(&q8), "{list}");
}

#[test]
fn a_queue_created_by_a_reference_tool_is_fed_by_the_server() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let q = Uuid::new_v4().to_string();
    r.cli(0, &["HSET", &format!("analyzer:{q}"), "type", "3"]);
    r.cli(0, &["SADD", "analyzer:3", &q]);
    r.cli(0, &["SADD", "all_analyzer_queues", &q]);
    // Routed within a second of its creation.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Sensor::new(&s, 3).send(b"hello from a sensor\n");
    let key = format!("analyzer:3:{q}");
    wait_for(
        "the line in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key]) == "1").then_some(()),
    );
    assert_eq!(r.cli(2, &["RPOP", &key]), "hello from a sensor");
}

#[test]
fn forward_reads_and_acknowledges_a_redis_queue() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let private = Server::start(&["--store", &r.url(0)]);
    let public = Server::start(&[]);
    let q = private.create_queue("3", &[]);
    let q_public = public.create_queue("3", &[]);
    Sensor::new(&private, 3).send(b"first\nsecond\n");
    let key = format!("analyzer:3:{q}");
    wait_for(
        "2 lines in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key]) == "2").then_some(()),
    );
    let to_public = Sensor::new(&public, 3);
    let o = private.d4(&[
        "forward",
        "-u",
        &q,
        "-c",
        to_public.dir.path().to_str().unwrap(),
        "--once",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(r.cli(2, &["LLEN", &key]), "0");
    assert_eq!(r.cli(2, &["EXISTS", &format!("d4:processing:{q}")]), "0");
    public.wait_queue_len(&q_public, 2);
    assert_eq!(public.drain("3", &q_public, &["-n"]), b"first\nsecond\n");
}

#[test]
fn redis_outage_of_20_s_spools_on_disk_and_delivers_everything_once() {
    let Some(mut r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let q = s.create_queue("8", &[]);
    let key = format!("analyzer:8:{q}");
    let batch = |tag: &str| -> String { (0..50).map(|i| format!("{tag}{i}\n")).collect() };
    let (a, b) = (Sensor::new(&s, 8), Sensor::new(&s, 8));
    a.send(batch("a").as_bytes());
    wait_for(
        "50 lines in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key]) == "50").then_some(()),
    );

    r.stop();
    let outage = std::time::Instant::now();
    // Ingest goes on while Redis is away (20 s): both sensors deliver, each
    // in two sessions spread over the outage.
    let half = |tag: &str, from: usize| -> String {
        (from..from + 25).map(|i| format!("{tag}{i}\n")).collect()
    };
    a.send(half("b", 0).as_bytes());
    b.send(half("c", 0).as_bytes());
    std::thread::sleep(std::time::Duration::from_secs(8));
    a.send(half("b", 25).as_bytes());
    b.send(half("c", 25).as_bytes());
    let metrics = |s: &Server| -> String {
        s.http
            .get(format!("{}/metrics", s.api))
            .header("Authorization", &s.token)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    wait_for(
        "100 items spooled",
        std::time::Duration::from_secs(20),
        || {
            metrics(&s)
                .contains("d4_redis_spool_items 100")
                .then_some(())
        },
    );
    assert!(
        s.log().contains("spooled on disk"),
        "a clear log line on loss of Redis"
    );
    if let Some(rest) = std::time::Duration::from_secs(20).checked_sub(outage.elapsed()) {
        std::thread::sleep(rest);
    }

    r.restart();
    wait_for(
        "150 lines in Redis",
        std::time::Duration::from_secs(30),
        || (r.cli(2, &["LLEN", &key]) == "150").then_some(()),
    );
    assert!(metrics(&s).contains("d4_redis_spool_items 0"));
    assert!(
        s.log().contains("delivered to Redis"),
        "a clear log line on recovery"
    );
    let mut got = Vec::new();
    loop {
        let v = r.cli(2, &["RPOP", &key]);
        if v.is_empty() {
            break;
        }
        got.push(v);
    }
    assert_eq!(got.len(), 150, "nothing lost, nothing duplicated");
    // Each sensor's lines in the order sent.
    for tag in ["a", "b", "c"] {
        let mine: Vec<&String> = got.iter().filter(|l| l.starts_with(tag)).collect();
        let want: Vec<String> = (0..50).map(|i| format!("{tag}{i}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{tag}");
    }
    // Every frame is on disk too.
    let mut on_disk = String::new();
    for u in [&a.uuid, &b.uuid] {
        for e in std::fs::read_dir(s.day_dir(u, "8")).unwrap() {
            let p = e.unwrap().path();
            let mut t = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).unwrap()),
                &mut t,
            )
            .unwrap();
            on_disk.push_str(&t);
        }
    }
    for tag in ["a", "b", "c"] {
        assert_eq!(on_disk.matches(&format!("{tag}49\n")).count(), 1);
    }
}

#[test]
fn two_nodes_share_one_redis_blocklists_and_queues() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0)]);
    let b = Server::start(&["--store", &r.url(0)]);
    // A queue made on node A is fed by both nodes.
    let q = a.create_queue("3", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1500)); // node B's cache
    let on_b = Sensor::new(&b, 3);
    Sensor::new(&a, 3).send(b"via node A\n");
    on_b.send(b"via node B\n");
    let key = format!("analyzer:3:{q}");
    wait_for(
        "both lines in one list",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key]) == "2").then_some(()),
    );
    // A sensor blocked through node A is refused by node B within a second.
    a.d4_ok(&["sensor", "block", &on_b.uuid.to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let o = on_b.run(b"refused\n", &["--max-retries", "1", "--max-backoff", "1"]);
    assert!(
        !o.status.success(),
        "node B accepted a sensor blocked on node A"
    );
    b.wait_error(&on_b.uuid, "blocklisted");
    assert_eq!(
        r.cli(
            0,
            &[
                "SISMEMBER",
                "blacklist_uuid",
                &on_b.uuid.simple().to_string()
            ]
        ),
        "1"
    );
    // A block written by a reference tool applies too.
    let other = Sensor::new(&a, 3);
    r.cli(
        0,
        &["SADD", "blacklist_uuid", &other.uuid.simple().to_string()],
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let o = other.run(b"refused\n", &["--max-retries", "1", "--max-backoff", "1"]);
    assert!(!o.status.success(), "a reference tool's block was ignored");
    a.wait_error(&other.uuid, "blocklisted");
    // Unblocked on node A: node B accepts the sensor again.
    a.d4_ok(&["sensor", "unblock", &on_b.uuid.to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    on_b.send(b"welcome back\n");
}

#[test]
fn one_connection_per_sensor_and_type_across_nodes() {
    use std::io::Write;
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0)]);
    let b = Server::start(&["--store", &r.url(0)]);
    let s = Sensor::new(&a, 3);
    // A session to node A that stays open.
    let mut on_a = std::process::Command::new(D4)
        .args(["client", "-c", s.dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = on_a.stdin.take().unwrap();
    stdin.write_all(b"held open\n").unwrap();
    stdin.flush().unwrap();
    let lease = format!("d4:live:{}:3", s.uuid.simple());
    wait_for(
        "the lease in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(0, &["EXISTS", &lease]) == "1").then_some(()),
    );
    // The same sensor and type on node B: refused, with the reason recorded there.
    let to_b = Sensor::new(&b, 3);
    std::fs::copy(s.dir.path().join("uuid"), to_b.dir.path().join("uuid")).unwrap();
    let o = to_b.run(b"second\n", &["--max-retries", "1", "--max-backoff", "1"]);
    assert!(!o.status.success(), "node B let a second connection in");
    b.wait_error(&s.uuid, "live connection");
    // Once the first session ends, its lease goes and node B accepts the sensor.
    drop(stdin);
    assert!(on_a.wait().unwrap().success());
    wait_for(
        "the lease released",
        std::time::Duration::from_secs(20),
        || (r.cli(0, &["EXISTS", &lease]) == "0").then_some(()),
    );
    to_b.send(b"now through node B\n");
}
