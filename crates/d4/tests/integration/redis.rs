//! Redis mode: the queue backend in the reference key schema against a real
//! `redis-server` (started on a free loopback port; `ci.sh` installs it),
//! checked with plain Redis commands as the reference analyzers issue them,
//! and the server with `--store redis://`.

use d4_server::QueueType;
use std::time::Duration;

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
async fn pushes_are_idempotent_and_a_foreign_key_type_spoils_no_other_queue() {
    use d4_server::PushGroup;
    let Some(r) = RedisServer::start() else {
        return;
    };
    let mut q = r.queues().await;
    q.set_node("node-test", 0);
    let t3 = QueueType::Type(3);
    let a = q
        .create(t3.clone(), String::new(), 100, vec![])
        .await
        .unwrap();
    let b = q
        .create(t3.clone(), String::new(), 3, vec![])
        .await
        .unwrap();
    let group = |d: &d4_server::QueueDef, first_seq, items| PushGroup {
        queue: d.uuid,
        ty: &t3,
        max: d.max_size,
        first_seq,
        items,
    };
    let key = |d: &d4_server::QueueDef| format!("analyzer:3:{}", d.uuid);
    let (s0, s1) = (q.reserve(2), q.reserve(4));
    let first: &[&[u8]] = &[b"a1", b"a2"];
    let second: &[&[u8]] = &[b"b1", b"b2", b"b3", b"b4"];
    let push = [group(&a, s0, first), group(&b, s1, second)];
    q.push_many(&push).await.unwrap();
    // The same push again (its reply was lost, it was spooled, the node
    // restarted...): nothing twice, nothing counted twice.
    q.push_many(&push).await.unwrap();
    q.push_many(&push[1..]).await.unwrap();
    assert_eq!(r.cli(2, &["LLEN", &key(&a)]), "2");
    assert_eq!(r.cli(2, &["LRANGE", &key(&b), "0", "-1"]), "b4\nb3\nb2");
    let d = q.get(b.uuid).await.unwrap().unwrap();
    assert_eq!((d.pushed, d.dropped), (4, 1));
    assert_eq!(
        r.cli(2, &["GET", "d4:pushed_upto:node-test"]),
        (s1 + 3).to_string()
    );
    // A retry overlapping what was applied delivers only the rest.
    let s2 = q.reserve(2);
    let third: &[&[u8]] = &[b"a3", b"a4"];
    q.push_many(&[group(&a, s2, &third[..1])]).await.unwrap();
    q.push_many(&[group(&a, s2, third)]).await.unwrap();
    assert_eq!(r.cli(2, &["LRANGE", &key(&a), "0", "-1"]), "a4\na3\na2\na1");
    let d = q.get(a.uuid).await.unwrap().unwrap();
    assert_eq!(d.pushed, 4, "items counted once");
    // Queue b's list key replaced by a string (another tool): its items are
    // dropped and counted, queue a still gets its own.
    r.cli(2, &["SET", &key(&b), "not a list"]);
    let s3 = q.reserve(1);
    let s4 = q.reserve(1);
    q.push_many(&[group(&b, s3, &[b"b5"]), group(&a, s4, &[b"a5"])])
        .await
        .unwrap();
    assert_eq!(r.cli(2, &["LINDEX", &key(&a), "0"]), "a5");
    let d = q.get(b.uuid).await.unwrap().unwrap();
    assert_eq!(d.dropped, 2);
    // Redis says what it applied last, for a node to continue after it.
    assert_eq!(q.applied_upto("node-test").await.unwrap(), Some(s4));
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
    let id = |d: &d4_server::QueueDef| d.uuid.to_string();
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
    // Part of the batch acknowledged: the rest is read again, first.
    assert_eq!(q.ack(d.uuid, 1).await.unwrap(), 1);
    assert_eq!(q.read(d.uuid, 3).await.unwrap(), items[1..2]);
    assert_eq!(q.ack(d.uuid, 1).await.unwrap(), 1);
    assert_eq!(q.read(d.uuid, 10).await.unwrap(), items[2..]);
    assert_eq!(q.ack(d.uuid, u64::MAX).await.unwrap(), 3);
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
    // Queue hashes no D4 type can be read from, as reference tools leave
    // them (create_queues writes type 2 without its metatype), before and
    // after the start: left out with a warning, never a failure of the rest.
    let unusable = |id: &str, ty: &str| {
        r.cli(0, &["HSET", &format!("analyzer:{id}"), "type", ty]);
        r.cli(0, &["SADD", "all_analyzer_queues", id]);
    };
    let bad1 = Uuid::new_v4().to_string();
    unusable(&bad1, "2");
    let s = Server::start(&["--store", &r.url(0)]);
    unusable(&Uuid::new_v4().to_string(), "not a type!");
    let q = Uuid::new_v4().to_string();
    r.cli(0, &["HSET", &format!("analyzer:{q}"), "type", "3"]);
    // A max size past what LTRIM takes is capped, not a wiped list.
    r.cli(
        0,
        &[
            "HSET",
            &format!("analyzer:{q}"),
            "max_size",
            &u64::MAX.to_string(),
        ],
    );
    r.cli(0, &["SADD", "analyzer:3", &q]);
    r.cli(0, &["SADD", "all_analyzer_queues", &q]);
    // Routed within a second of its creation.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Sensor::new(&s, 3).send(b"hello from a sensor\nand a second line\n");
    let key = format!("analyzer:3:{q}");
    wait_for(
        "the lines in Redis",
        std::time::Duration::from_secs(20),
        || (r.cli(2, &["LLEN", &key]) == "2").then_some(()),
    );
    assert_eq!(r.cli(2, &["RPOP", &key]), "hello from a sensor");
    let list = String::from_utf8(s.d4_ok(&["queue", "list"])).unwrap();
    assert!(list.contains(&q) && !list.contains(&bad1), "{list}");
    assert!(
        s.log().contains(&format!(
            "queue {bad1}: its hash analyzer:{bad1} has type \"2\""
        )),
        "{}",
        s.log()
    );
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
    wait_for(
        "100 items spooled",
        std::time::Duration::from_secs(20),
        || {
            s.metrics()
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
    wait_for("the spool emptied", Duration::from_secs(5), || {
        s.metrics().contains("d4_redis_spool_items 0").then_some(())
    });
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
    // The statistics of the frames received during the outage arrive too:
    // Redis counts what the node counted.
    for sensor in [&a, &b] {
        let want = s.sensor(&sensor.uuid)["daily"][today()]["frames"]
            .as_u64()
            .unwrap()
            .to_string();
        let key = format!("daily_uuid:{}", today());
        let u = sensor.uuid.simple().to_string();
        wait_for("daily statistics in Redis", Duration::from_secs(10), || {
            (r.cli(0, &["ZSCORE", &key, &u]) == want).then_some(())
        });
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
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0)]);
    let b = Server::start(&["--store", &r.url(0)]);
    let s = Sensor::new(&a, 3);
    // A session to node A that stays open.
    let (mut on_a, stdin) = held_open(&s);
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

#[test]
fn a_lapsed_lease_is_taken_again_and_one_taken_by_another_session_closes_this_one() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0)]);
    let s = Sensor::new(&a, 3);
    let (mut on_a, stdin) = held_open(&s);
    let lease = format!("d4:live:{}:3", s.uuid.simple());
    let ours = wait_for("the lease in Redis", Duration::from_secs(20), || {
        Some(r.cli(0, &["GET", &lease])).filter(|v| !v.is_empty())
    });
    // The lease lapsed (an outage longer than 15 s): taken again at the next renewal.
    r.cli(0, &["DEL", &lease]);
    wait_for("the lease taken again", Duration::from_secs(20), || {
        (r.cli(0, &["GET", &lease]) == ours).then_some(())
    });
    // Meanwhile a session on another node took it: this one is the second
    // connection and is closed, with the reason recorded.
    r.cli(0, &["SET", &lease, "other-node/session", "PX", "60000"]);
    a.wait_error(&s.uuid, "live connection");
    drop(stdin);
    let _ = on_a.wait();
    assert_eq!(
        r.cli(0, &["GET", &lease]),
        "other-node/session",
        "the other session's lease is left alone"
    );
}

/// A `d4 client` session that has sent a line and stays open until its
/// stdin is dropped.
fn held_open(s: &Sensor) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write;
    let mut c = std::process::Command::new(D4)
        .args(["client", "-c", s.dir.path().to_str().unwrap()])
        .args(["--max-retries", "1", "--max-backoff", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"held open\n").unwrap();
    stdin.flush().unwrap();
    (c, stdin)
}

/// `d4 client` that must be refused; returns nothing, asserts failure.
fn refused(s: &Sensor) {
    let o = s.run(b"refused\n", &["--max-retries", "1", "--max-backoff", "1"]);
    assert!(
        !o.status.success(),
        "sensor {} was accepted",
        s.uuid.simple()
    );
}

/// Today's date as the reference writes it in key names.
fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

#[test]
fn policy_written_by_reference_tools_applies() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let sensor = Sensor::new(&s, 3);
    let u = sensor.uuid.simple().to_string();
    sensor.send(b"first\n");
    // The server seeded the shared settings a reference server reads.
    assert_eq!(r.cli(0, &["GET", "server:hmac_default_key"]), KEY);
    assert_eq!(r.cli(0, &["SISMEMBER", "server:accepted_type", "3"]), "1");
    // Sensor metadata in the reference schema.
    wait_for("metadata in Redis", Duration::from_secs(10), || {
        (r.cli(0, &["HEXISTS", &format!("metadata_uuid:{u}"), "last_seen"]) == "1").then_some(())
    });
    assert!(r
        .cli(0, &["LRANGE", &format!("list_uuid_ip:{u}"), "0", "-1"])
        .starts_with("127.0.0.1-"));
    assert_ne!(
        r.cli(0, &["ZSCORE", &format!("daily_uuid:{}", today()), &u]),
        ""
    );

    // A type removed from `server:accepted_type` is refused.
    r.cli(0, &["SREM", "server:accepted_type", "3"]);
    std::thread::sleep(Duration::from_millis(1000));
    refused(&sensor);
    s.wait_error(&sensor.uuid, "not accepted");
    // The refusal is in the reference's `Error` field.
    wait_for("Error in metadata_uuid", Duration::from_secs(10), || {
        r.cli(0, &["HGET", &format!("metadata_uuid:{u}"), "Error"])
            .contains("not accepted")
            .then_some(())
    });
    r.cli(0, &["SADD", "server:accepted_type", "3"]);
    std::thread::sleep(Duration::from_millis(1000));
    sensor.send(b"type 3 again\n");
    // Accepted traffic clears it.
    wait_for("Error cleared", Duration::from_secs(10), || {
        (r.cli(0, &["HEXISTS", &format!("metadata_uuid:{u}"), "Error"]) == "0").then_some(())
    });

    // A per-sensor key set by a reference tool: the old key no longer works.
    r.cli(
        0,
        &[
            "HSET",
            &format!("metadata_uuid:{u}"),
            "hmac_key",
            "the sensor's own key",
        ],
    );
    refused(&sensor);
    s.wait_error(&sensor.uuid, "HMAC");
    sensor.set("key", "the sensor's own key\n");
    sensor.send(b"with its own key\n");

    // A temporary kick (`temp_blacklist_uuid:<uuid>` with a TTL).
    r.cli(
        0,
        &["SET", &format!("temp_blacklist_uuid:{u}"), "x", "EX", "30"],
    );
    refused(&sensor);
    s.wait_error(&sensor.uuid, "kicked");
    r.cli(0, &["DEL", &format!("temp_blacklist_uuid:{u}")]);
    sensor.send(b"after the kick\n");
}

#[test]
fn a_kick_requested_by_the_reference_ui_closes_the_session() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let sensor = Sensor::new(&s, 3);
    let (mut c, stdin) = held_open(&sensor);
    wait_for("the session live", Duration::from_secs(20), || {
        (r.cli(
            0,
            &["EXISTS", &format!("d4:live:{}:3", sensor.uuid.simple())],
        ) == "1")
            .then_some(())
    });
    r.cli(
        0,
        &[
            "SADD",
            "server:sensor_to_kick",
            &sensor.uuid.simple().to_string(),
        ],
    );
    s.wait_error(&sensor.uuid, "kicked");
    assert_eq!(r.cli(0, &["SCARD", "server:sensor_to_kick"]), "0");
    let ttl: i64 = r
        .cli(
            0,
            &[
                "TTL",
                &format!("temp_blacklist_uuid:{}", sensor.uuid.simple()),
            ],
        )
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 30, "TTL {ttl}");
    drop(stdin);
    let _ = c.wait();
}

#[test]
fn two_nodes_share_approvals_keys_kicks_and_accepted_types() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0), "--mode", "registration"]);
    let b = Server::start(&["--store", &r.url(0), "--mode", "registration"]);
    // Registered through node A's API with its own key, approved on node B,
    // accepted by both with that key.
    let sensor = Sensor::new(&a, 3);
    let u = sensor.uuid.simple().to_string();
    let reg = a
        .http
        .post(format!("{}/api/v1/add/sensor/register", a.api))
        .header("Authorization", &a.token)
        .json(&serde_json::json!({"uuid": sensor.uuid.to_string(), "hmac_key": "registered key"}))
        .send()
        .unwrap();
    assert_eq!(reg.status(), 200, "{}", reg.text().unwrap_or_default());
    wait_for("pending on node B", Duration::from_secs(10), || {
        (b.sensor(&sensor.uuid)["status"] == "pending").then_some(())
    });
    b.d4_ok(&["sensor", "approve", &sensor.uuid.to_string()]);
    wait_for("the approval in Redis", Duration::from_secs(2), || {
        (r.cli(0, &["SISMEMBER", "registered_uuid", &u]) == "1").then_some(())
    });
    assert_eq!(
        r.cli(0, &["SISMEMBER", "sensor_pending_registration", &u]),
        "0"
    );
    assert_eq!(
        r.cli(0, &["HGET", &format!("metadata_uuid:{u}"), "hmac_key"]),
        "registered key"
    );
    sensor.set("key", "registered key\n");
    std::thread::sleep(Duration::from_millis(1000));
    sensor.send(b"to node A\n");
    let to_b = Sensor::new(&b, 3);
    std::fs::copy(sensor.dir.path().join("uuid"), to_b.dir.path().join("uuid")).unwrap();
    to_b.set("key", "registered key\n");
    to_b.send(b"to node B\n");

    // Kicked on node A while connected to node B: node B closes it within a second.
    let (mut c, stdin) = held_open(&to_b);
    let lease = format!("d4:live:{u}:3");
    wait_for("the session live on B", Duration::from_secs(20), || {
        (r.cli(0, &["EXISTS", &lease]) == "1").then_some(())
    });
    a.d4_ok(&["sensor", "kick", &sensor.uuid.to_string()]);
    let kicked = std::time::Instant::now();
    b.wait_error(&sensor.uuid, "kicked");
    assert!(
        kicked.elapsed() < Duration::from_millis(1000),
        "node B took {:?} to apply a kick made on node A",
        kicked.elapsed()
    );
    drop(stdin);
    let _ = c.wait();
    // Still refused by node B for the kick period.
    refused(&to_b);

    // Accepted types changed on node A apply on node B.
    let other = Sensor::new(&b, 8);
    b.d4_ok(&["sensor", "approve", &other.uuid.to_string()]);
    let types = a.api_get("/types")["types"].clone();
    assert!(types.to_string().contains('8'), "{types}");
    let put = a
        .http
        .post(format!("{}/api/v1/types", a.api))
        .header("Authorization", &a.token)
        .json(&serde_json::json!({"types": [1, 2, 3, 254], "extended": []}))
        .send()
        .unwrap();
    assert!(
        put.status().is_success(),
        "{}",
        put.text().unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(1000));
    refused(&other);
    b.wait_error(&other.uuid, "not accepted");
    assert_eq!(r.cli(0, &["SISMEMBER", "server:accepted_type", "8"]), "0");
}

#[test]
fn sensor_statistics_buffered_on_disk_across_an_outage_and_a_restart() {
    let Some(mut r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let sensor = Sensor::new(&s, 3);
    let u = sensor.uuid.simple().to_string();
    r.stop();
    // Frames arrive while Redis is away; the node restarts before it returns.
    sensor.send(b"one\ntwo\nthree\n");
    let frames = |s: &Server| -> u64 {
        s.sensor(&sensor.uuid)["daily"][today()]["frames"]
            .as_u64()
            .unwrap_or(0)
    };
    let sent = wait_for("frames counted", Duration::from_secs(10), || {
        let n = frames(&s);
        (n > 0).then_some(n)
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        s.log().contains("kept on disk"),
        "a clear log line on loss: {}",
        s.log()
    );
    // Stopped during the outage; started again once Redis is back (a node
    // does not start without its Redis): the buffer on disk is delivered.
    let dir = s.stop();
    r.restart();
    let s = Server::start_in(dir, &["--store", &r.url(0)]);
    wait_for("statistics delivered", Duration::from_secs(20), || {
        let v = r.cli(0, &["ZSCORE", &format!("daily_uuid:{}", today()), &u]);
        (v == sent.to_string()).then_some(())
    });
    assert_eq!(
        r.cli(
            0,
            &["ZSCORE", &format!("stat_uuid_type:{}:{u}", today()), "3"]
        ),
        sent.to_string()
    );
    assert!(r
        .cli(0, &["LRANGE", &format!("list_uuid_ip:{u}"), "0", "-1"])
        .starts_with("127.0.0.1-"));
    assert!(
        s.log().contains("buffered by a previous run"),
        "delivered from the disk buffer: {}",
        s.log()
    );
}

#[test]
fn redis_over_tls_with_a_password_and_a_client_certificate() {
    let Some(r) = RedisServer::start_tls() else {
        return;
    };
    let t = r.tls_dir();
    let conf = tempfile::tempdir().unwrap();
    let write_conf = |name: &str, with_client_cert: bool| {
        let mut c = format!(
            "redis_url = {:?}\nredis_tls_ca_file = {:?}\n",
            r.url(0),
            t.join("ca.crt")
        );
        if with_client_cert {
            c += &format!(
                "redis_tls_cert_file = {:?}\nredis_tls_key_file = {:?}\n",
                t.join("server.crt"),
                t.join("server.key")
            );
        }
        let p = conf.path().join(name);
        std::fs::write(&p, c).unwrap();
        p
    };
    // This Redis asks for a client certificate: without one the server does
    // not start, and says why without the password.
    let bare = write_conf("bare.toml", false);
    let data = conf.path().join("bare-data");
    let o = std::process::Command::new(D4)
        .args(["server", "--config", bare.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("cannot reach Redis at rediss://:***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains(REDIS_PASSWORD), "{err}");

    let full = write_conf("full.toml", true);
    let s = Server::start(&["--config", full.to_str().unwrap()]);
    let q = s.create_queue("8", &[]);
    assert_eq!(r.cli(0, &["HGET", &format!("analyzer:{q}"), "type"]), "8");
    Sensor::new(&s, 8).send(b"first line\nsecond line\n");
    let key = format!("analyzer:8:{q}");
    wait_for("2 lines in Redis over TLS", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "2").then_some(())
    });
    assert_eq!(r.cli(2, &["RPOP", &key]), "first line");
    assert_eq!(r.cli(2, &["RPOP", &key]), "second line");
    let log = s.log();
    assert!(
        log.contains("metadata rediss://:***@127.0.0.1"),
        "the log names the instance: {log}"
    );
    assert!(
        !log.contains(REDIS_PASSWORD),
        "the log shows no password: {log}"
    );
}

#[test]
fn a_push_answered_too_late_is_not_delivered_twice() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let q = s.create_queue("3", &[]);
    let key = format!("analyzer:3:{q}");
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"before\n");
    wait_for("the first line", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "1").then_some(())
    });
    // Redis stalls for 12 s, past the server's 3 s wait for a reply: the
    // server spools what it sent, and Redis runs the push it had received
    // once it wakes. Delivering the spool then must not repeat it.
    let stall = {
        let port = r.port;
        std::thread::spawn(move || {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "12"])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    sensor.send(b"during 1\nduring 2\n");
    stall.join().unwrap();
    // Its session was let in without an answer from Redis, whose lease
    // came late: released all the same, the sensor gets in again at once.
    sensor.send(b"after\n");
    wait_for("the spool delivered", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) != "1" && s.metrics().contains("d4_redis_spool_items 0"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let got = r.cli(2, &["LRANGE", &key, "0", "-1"]);
    assert_eq!(
        got, "after\nduring 2\nduring 1\nbefore",
        "each line once, in order"
    );
    // The statistics of those seconds count once too (a metadata batch
    // sent again carries its marker).
    let want = s.sensor(&sensor.uuid)["daily"][today()]["frames"]
        .as_u64()
        .unwrap()
        .to_string();
    let (key, u) = (
        format!("daily_uuid:{}", today()),
        sensor.uuid.simple().to_string(),
    );
    wait_for("daily statistics in Redis", Duration::from_secs(20), || {
        (r.cli(0, &["ZSCORE", &key, &u]) == want).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.cli(0, &["ZSCORE", &key, &u]), want, "counted once");
    assert!(
        s.log().contains("spooled on disk"),
        "the push was given up and spooled: {}",
        s.log()
    );
}

#[test]
fn a_node_made_from_a_copied_data_dir_has_a_name_of_its_own() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&["--store", &r.url(0)]);
    let q = a.create_queue("3", &[]);
    Sensor::new(&a, 3).send(b"from a\n");
    let key = format!("analyzer:3:{q}");
    wait_for("a's line", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "1").then_some(())
    });
    // Node B made by copying A's whole data directory (store included),
    // then both running: with one name, their numbers would collide and
    // Redis would skip one node's items as applied already.
    let dir_a = a.stop();
    let dir_b = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(dir_a.path().join("data"))
        .arg(dir_b.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let a = Server::start_in(dir_a, &["--store", &r.url(0)]);
    let b = Server::start_in(dir_b, &["--store", &r.url(0)]);
    Sensor::new(&a, 3).send(b"from a again\n");
    Sensor::new(&b, 3).send(b"from b\n");
    wait_for("every line, none skipped", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "3").then_some(())
    });
    assert_eq!(
        r.cli(2, &["LRANGE", &key, "0", "-1"]),
        "from b\nfrom a again\nfrom a"
    );
    let names = r.cli(2, &["KEYS", "d4:pushed_upto:*"]);
    assert_eq!(names.lines().count(), 2, "{names}");
}

#[test]
fn a_node_restarted_while_redis_is_away_starts_and_delivers_once_it_returns() {
    let Some(mut r) = RedisServer::start() else {
        return;
    };
    // A node that never read its queues from Redis does not start without it.
    r.stop();
    let fresh = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(D4)
        .args(["server", "--store", &r.url(0), "--data-dir"])
        .arg(fresh.path())
        .args(["--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("cannot reach Redis"), "{err}");
    r.restart();
    let s = Server::start(&["--store", &r.url(0)]);
    let q = s.create_queue("3", &[]);
    let key = format!("analyzer:3:{q}");
    Sensor::new(&s, 3).send(b"before\n");
    wait_for("the first line", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "1").then_some(())
    });
    // Restarted during an outage: it starts on the queues it read last,
    // stores what sensors send and spools the items.
    let dir = s.stop();
    r.stop();
    let s = Server::start_in(dir, &["--store", &r.url(0)]);
    Sensor::new(&s, 3).send(b"while away 1\nwhile away 2\n");
    wait_for("2 items spooled", Duration::from_secs(20), || {
        s.metrics().contains("d4_redis_spool_items 2").then_some(())
    });
    assert!(
        s.log().contains("routing to the 1 queues last read"),
        "{}",
        s.log()
    );
    r.restart();
    wait_for("every line in Redis", Duration::from_secs(30), || {
        (r.cli(2, &["LLEN", &key]) == "3").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        r.cli(2, &["LRANGE", &key, "0", "-1"]),
        "while away 2\nwhile away 1\nbefore",
        "each once, in order"
    );
}
