#![allow(clippy::unwrap_used)]
//! The Redis queue backend against a real `redis-server` (started here on a
//! free loopback port; `ci.sh` installs it), checked with plain Redis
//! commands as the reference analyzers issue them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use d4_server::queues::QueueType;
use d4_server::redis_queues::RedisQueues;
use uuid::Uuid;

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// A fresh redis-server, or None (test skipped) when it is not installed.
    fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: redis-server not installed (ci.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while r.cli(0, &["PING"]) != "PONG" {
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// `redis-cli -n DB ARGS`, as a reference tool would run it.
    fn cli(&self, db: u8, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-n",
                &db.to_string(),
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    async fn queues(&self) -> RedisQueues {
        // The reference layout: metadata in DB 0, queue lists in DB 2.
        RedisQueues::connect(&self.url(0), &self.url(2), 10_000)
            .await
            .unwrap()
    }
}

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
