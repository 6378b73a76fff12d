//! Operator accounts: users with roles, argon2 password hashes, API keys,
//! browser sessions and login throttling — all in the embedded store, so they
//! survive restarts.
//!
//! Store documents: `user:<name>`, `websession:<sha-256 of the cookie>`,
//! `throttle:<ip:ADDR|pair:ADDR NAME|user:NAME>`. API keys and session cookies are stored as
//! SHA-256 digests only: a copy of the store does not let anyone in.
//!
//! Password hashing and checking take tens of milliseconds: callers run them
//! off the async threads.
//!
//! Users have a role, an argon2id hash, a must-change flag and the SHA-256
//! of their API key. A role change ends the account's sessions, a password
//! change its other sessions; `sensor_register` accounts never open a
//! page. On first start, `admin` is created with a random password and API
//! key written to `<data-dir>/DEFAULT_PASSWORD` (0600); the password must be
//! changed at first login, and the file is removed then. Logins, browser
//! sessions and password changes are in `login`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::db::Db;

mod login;

/// Failed logins for one account from one address before that pair is
/// locked.
pub(crate) const MAX_FAILURES: u32 = 5;
/// Failed logins from one address (any account names) before the address
/// is locked.
pub(crate) const MAX_ADDRESS_FAILURES: u32 = 20;
/// Failed logins for one account (from all addresses) past which its
/// password checks are slowed to one at a time and one a second (never
/// locked: the operator's address is never shut out by others').
pub(crate) const ACCOUNT_SLOW_AFTER: u32 = 100;
/// Addresses remembered per account as having logged in: they are not
/// slowed by the account-wide limit.
const KNOWN_ADDRESSES: usize = 16;
/// How long a lock lasts, and the window failures are counted in (seconds).
pub(crate) const LOCK_SECS: i64 = 300;
/// How long a browser session lasts (seconds).
pub(crate) const SESSION_SECS: i64 = 12 * 3600;
/// Most sessions per account: a new login ends the oldest past it.
pub(crate) const MAX_SESSIONS: usize = 32;
/// Failed-login counters kept (then finished ones are forgotten, then
/// those idle the longest).
const MAX_THROTTLED: usize = 10_000;
/// Shortest password accepted.
pub(crate) const MIN_PASSWORD: usize = 10;
/// The file with the first admin's credentials, in the data dir.
pub(crate) const DEFAULT_PASSWORD_FILE: &str = "DEFAULT_PASSWORD";

/// What an account may do. `admin` ⊃ `user` ⊃ `sensor_register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// Only `POST /api/v1/add/sensor/register` (API only: cannot log in).
    SensorRegister,
    /// Sees everything, pops queues, registers sensors; changes nothing else.
    User,
    /// Everything.
    Admin,
}

impl Role {
    /// Whether this role includes `needed`.
    pub(crate) fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// Parses `admin`, `user`, `sensor_register`.
    pub(crate) fn parse(s: &str) -> Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "sensor_register" => Ok(Role::SensorRegister),
            _ => bail!("{s:?} is not a role (admin, user, sensor_register)"),
        }
    }

    /// The name used in the API and the UI.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::SensorRegister => "sensor_register",
        }
    }
}

/// An account as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct User {
    /// Login name.
    pub(crate) name: String,
    /// Role.
    pub(crate) role: Role,
    /// argon2id PHC string.
    pub(crate) password_hash: String,
    /// Set for new accounts and the first admin: the next login must change it.
    pub(crate) must_change_password: bool,
    /// SHA-256 (hex) of the API key.
    pub(crate) api_key_hash: String,
    /// Unix seconds.
    pub(crate) created: i64,
}

/// An account as the API and UI show it (no secrets).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserView {
    /// Login name.
    pub(crate) name: String,
    /// Role.
    pub(crate) role: Role,
    /// Whether the next login must change the password.
    pub(crate) must_change_password: bool,
    /// Unix seconds.
    pub(crate) created: i64,
}

/// A browser session (cookie `d4_session`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WebSession {
    /// Account name.
    pub(crate) user: String,
    /// The CSRF token every form of this session carries.
    pub(crate) csrf: String,
    /// Unix seconds.
    pub(crate) expires: i64,
}

/// Failed logins for one address, (address, account) pair or account.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Throttle {
    failures: u32,
    /// Unix seconds of the first failure of the window.
    first: i64,
    /// Locked until then (addresses and pairs only; never accounts).
    locked_until: i64,
    /// Unix seconds of the last failure (the account-wide slowing).
    last: i64,
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoginError {
    /// Too many failures: retry after this many seconds.
    Throttled(i64),
    /// Wrong name or password (which one is not said).
    Bad,
}

/// Failed-login counters, and the checks in progress that may add to them.
#[derive(Default)]
struct Throttles {
    counts: HashMap<String, Throttle>,
    /// Password checks under way, per key: each holds a failure slot until
    /// it ends, so parallel attempts cannot get past the limit.
    inflight: HashMap<String, u32>,
    /// Per account, the addresses it last logged in from (newest last, at
    /// most [`KNOWN_ADDRESSES`]; only existing accounts, so bounded by
    /// them): exempt from the account-wide slowing. In memory only.
    known: HashMap<String, Vec<String>>,
}

/// The account registry.
pub(crate) struct Accounts {
    db: Arc<Db>,
    users: Mutex<BTreeMap<String, User>>,
    sessions: Mutex<HashMap<String, WebSession>>,
    throttle: Mutex<Throttles>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random secret: 32 characters of `[A-Za-z0-9]`.
pub(crate) fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..32)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// SHA-256 in hex (digests of API keys and cookies).
pub(crate) fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hash_password(pw: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| anyhow!("{e}"))?;
    Ok(Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

fn check_password(hash: &str, pw: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Whether two secrets (tokens, digests, CSRF values) are equal, in time
/// that does not depend on where they differ (`subtle`; the length is not
/// secret). The one comparison of secrets in the server.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Whether `name` can be an account name (1-64 of `A-Z a-z 0-9 . _ @ - +`).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-+".contains(c))
}

fn check_new_password(pw: &str) -> Result<()> {
    if pw.chars().count() < MIN_PASSWORD {
        bail!("the password must have at least {MIN_PASSWORD} characters");
    }
    if pw.len() > 1024 {
        bail!("the password is too long (1024 bytes at most)");
    }
    Ok(())
}

impl Accounts {
    /// Loads accounts, live sessions and throttle state.
    pub(crate) fn load(db: Arc<Db>) -> Result<Accounts> {
        let now = chrono::Utc::now().timestamp();
        let users = db
            .docs_with_prefix::<User>("user:")?
            .into_iter()
            .map(|(_, u)| (u.name.clone(), u))
            .collect();
        let (sessions, expired): (Vec<_>, Vec<_>) = db
            .docs_with_prefix::<WebSession>("websession:")?
            .into_iter()
            .partition(|(_, s)| s.expires > now);
        for (k, _) in expired {
            db.delete_doc(&k)?;
        }
        let sessions = sessions
            .into_iter()
            .map(|(k, s)| (k["websession:".len()..].to_string(), s))
            .collect();
        let throttle = db
            .docs_with_prefix::<Throttle>("throttle:")?
            .into_iter()
            .map(|(k, t)| (k["throttle:".len()..].to_string(), t))
            .collect();
        Ok(Accounts {
            db,
            users: Mutex::new(users),
            sessions: Mutex::new(sessions),
            throttle: Mutex::new(Throttles {
                counts: throttle,
                inflight: HashMap::new(),
                known: HashMap::new(),
            }),
        })
    }

    fn save_user(&self, u: &User) -> Result<()> {
        self.db.put_docs(&[(format!("user:{}", u.name), u)])
    }

    /// On first start (no account at all): creates `admin` with a random
    /// password that must be changed at first login and an API key, and
    /// writes both to `<data-dir>/DEFAULT_PASSWORD` (mode 0600).
    pub(crate) fn ensure_admin(&self, data_dir: &Path, web_url: &str) -> Result<bool> {
        if !lock(&self.users).is_empty() {
            return Ok(false);
        }
        let password = random_secret();
        let key = self.create_user("admin", Role::Admin, &password)?;
        let text = format!(
            "# d4 web UI: {web_url}/\n# The password must be changed at first login; this file is removed then.\nuser: admin\npassword: {password}\napi_key: {key}\n"
        );
        crate::server::write_private(&data_dir.join(DEFAULT_PASSWORD_FILE), text.as_bytes())?;
        Ok(true)
    }

    /// Creates an account; it must change its password at first login.
    /// Returns its API key (shown once).
    pub(crate) fn create_user(&self, name: &str, role: Role, password: &str) -> Result<String> {
        if !valid_name(name) {
            bail!("{name:?} is not a valid user name (1-64 of A-Z a-z 0-9 . _ @ - +)");
        }
        check_new_password(password)?;
        if lock(&self.users).contains_key(name) {
            bail!("user {name:?} already exists");
        }
        let key = random_secret();
        let u = User {
            name: name.to_string(),
            role,
            password_hash: hash_password(password)?,
            must_change_password: true,
            api_key_hash: digest(&key),
            created: chrono::Utc::now().timestamp(),
        };
        self.save_user(&u)?;
        lock(&self.users).insert(u.name.clone(), u);
        Ok(key)
    }

    /// Every account, without secrets.
    pub(crate) fn list(&self) -> Vec<UserView> {
        lock(&self.users)
            .values()
            .map(|u| UserView {
                name: u.name.clone(),
                role: u.role,
                must_change_password: u.must_change_password,
                created: u.created,
            })
            .collect()
    }

    /// One account.
    pub(crate) fn get(&self, name: &str) -> Option<User> {
        lock(&self.users).get(name).cloned()
    }

    fn admins(&self) -> usize {
        lock(&self.users)
            .values()
            .filter(|u| u.role == Role::Admin)
            .count()
    }

    /// Changes an account's role (the last admin stays admin) and ends its
    /// sessions.
    pub(crate) fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let mut u = self.get(name).ok_or_else(|| anyhow!("no user {name:?}"))?;
        if u.role == Role::Admin && role != Role::Admin && self.admins() == 1 {
            bail!("{name:?} is the last admin");
        }
        u.role = role;
        self.save_user(&u)?;
        lock(&self.users).insert(u.name.clone(), u);
        // Sessions opened under the old role end: log in again.
        self.end_sessions(name, None)
    }

    /// Deletes an account and its sessions (not the last admin).
    pub(crate) fn delete_user(&self, name: &str) -> Result<()> {
        let u = self.get(name).ok_or_else(|| anyhow!("no user {name:?}"))?;
        if u.role == Role::Admin && self.admins() == 1 {
            bail!("{name:?} is the last admin");
        }
        self.db.delete_doc(&format!("user:{name}"))?;
        lock(&self.users).remove(name);
        lock(&self.throttle).known.remove(name);
        self.end_sessions(name, None)
    }

    /// Ends every session of an account, except the one of cookie `keep`.
    fn end_sessions(&self, name: &str, keep: Option<&str>) -> Result<()> {
        let keep = keep.map(digest);
        let gone: Vec<String> = {
            let mut s = lock(&self.sessions);
            let ids: Vec<String> = s
                .iter()
                .filter(|(k, w)| w.user == name && keep.as_ref() != Some(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &ids {
                s.remove(k);
            }
            ids
        };
        for k in gone {
            self.db.delete_doc(&format!("websession:{k}"))?;
        }
        Ok(())
    }

    /// Gives an account a new API key; returns it (shown once).
    pub(crate) fn reset_api_key(&self, name: &str) -> Result<String> {
        let mut u = self.get(name).ok_or_else(|| anyhow!("no user {name:?}"))?;
        let key = random_secret();
        u.api_key_hash = digest(&key);
        self.save_user(&u)?;
        lock(&self.users).insert(u.name.clone(), u);
        Ok(key)
    }

    /// The account an API key belongs to.
    pub(crate) fn by_api_key(&self, key: &str) -> Option<User> {
        let d = digest(key);
        lock(&self.users)
            .values()
            .find(|u| ct_eq(u.api_key_hash.as_bytes(), d.as_bytes()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value_and_length() {
        assert!(ct_eq(b"token", b"token"));
        assert!(!ct_eq(b"token", b"tokem"));
        assert!(!ct_eq(b"token", b"token2"));
        assert!(ct_eq(b"", b""));
    }

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let d = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(d.path()).unwrap());
        (d, Accounts::load(db).unwrap())
    }

    #[test]
    fn first_admin_login_change_and_restart() {
        let (d, a) = accounts();
        assert!(a.ensure_admin(d.path(), "https://127.0.0.1:7000").unwrap());
        assert!(!a.ensure_admin(d.path(), "x").unwrap());
        let text = std::fs::read_to_string(d.path().join(DEFAULT_PASSWORD_FILE)).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .trim()
                .to_string()
        };
        let (pw, key) = (field("password:"), field("api_key:"));
        assert_eq!(a.by_api_key(&key).unwrap().role, Role::Admin);
        assert!(a.by_api_key("nope").is_none());
        let t = chrono::Utc::now().timestamp();
        let (cookie, s) = a.login("admin", &pw, "192.0.2.1", t).unwrap().unwrap();
        assert_eq!(a.session(&cookie, t + 1).unwrap().0.csrf, s.csrf);
        assert!(a.get("admin").unwrap().must_change_password);
        assert!(a
            .change_password("admin", "wrong", "another password", d.path(), None)
            .is_err());
        assert!(a
            .change_password("admin", &pw, "short", d.path(), None)
            .is_err());
        let (other, _) = a.login("admin", &pw, "192.0.2.2", t).unwrap().unwrap();
        a.change_password("admin", &pw, "a much better one", d.path(), Some(&cookie))
            .unwrap();
        // The other session ended; this one goes on.
        assert!(a.session(&other, t + 1).is_none());
        assert!(!d.path().join(DEFAULT_PASSWORD_FILE).exists());
        // Survives a restart.
        let b = Accounts::load(a.db.clone()).unwrap();
        assert!(!b.get("admin").unwrap().must_change_password);
        assert!(b.session(&cookie, t + 1).is_some());
        assert!(b.session(&cookie, t + SESSION_SECS).is_none());
        b.logout(&cookie).unwrap();
        assert!(b.session(&cookie, t + 1).is_none());
    }

    fn throttled(r: Result<std::result::Result<(String, WebSession), LoginError>>) -> bool {
        matches!(r.unwrap(), Err(LoginError::Throttled(_)))
    }

    #[test]
    fn wrong_passwords_from_one_address_do_not_lock_the_account_elsewhere() {
        let (_d, a) = accounts();
        a.create_user("admin", Role::Admin, "admin's password")
            .unwrap();
        let attacker = "203.0.113.66";
        for i in 0..MAX_FAILURES + 3 {
            let r = a.login("admin", "wrong", attacker, 10).unwrap();
            if i < MAX_FAILURES {
                assert_eq!(r.unwrap_err(), LoginError::Bad);
            } else {
                assert!(matches!(r, Err(LoginError::Throttled(_))));
            }
        }
        // The operator, from another address, at once.
        assert!(a
            .login("admin", "admin's password", "192.0.2.10", 11)
            .unwrap()
            .is_ok());
        // The attacker's address stays locked for admin, even with the
        // right password, and the lock is in the store.
        assert!(throttled(a.login(
            "admin",
            "admin's password",
            attacker,
            12
        )));
        let b = Accounts::load(a.db.clone()).unwrap();
        assert!(throttled(b.login(
            "admin",
            "admin's password",
            attacker,
            12
        )));
        assert!(b
            .login("admin", "admin's password", attacker, 10 + LOCK_SECS + 1)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn an_address_is_locked_across_names() {
        let (_d, a) = accounts();
        a.create_user("alice", Role::User, "alice's password")
            .unwrap();
        let ip = "203.0.113.9";
        for i in 0..MAX_ADDRESS_FAILURES {
            let name = format!("nobody{i}");
            assert_eq!(
                a.login(&name, "x", ip, 20).unwrap().unwrap_err(),
                LoginError::Bad
            );
        }
        assert!(throttled(a.login("alice", "alice's password", ip, 21)));
        assert!(a
            .login("alice", "alice's password", "203.0.113.10", 21)
            .unwrap()
            .is_ok());
        // Unknown names are counted like accounts, in the store too.
        assert!(a
            .db
            .get_doc::<Throttle>("throttle:pair:203.0.113.9 nobody0")
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_distributed_guess_slows_the_account_but_not_its_known_address() {
        let (_d, a) = accounts();
        a.create_user("alice", Role::User, "alice's password")
            .unwrap();
        let home = "192.0.2.1";
        assert!(a
            .login("alice", "alice's password", home, 1)
            .unwrap()
            .is_ok());
        // ACCOUNT_SLOW_AFTER failures from many addresses, few each.
        for i in 0..ACCOUNT_SLOW_AFTER {
            let ip = format!("10.0.{}.{}", i / 4, i % 4);
            assert_eq!(
                a.login("alice", "guess", &ip, 10).unwrap().unwrap_err(),
                LoginError::Bad
            );
        }
        // A new address now waits for the next second, then gets one check.
        assert!(throttled(a.login("alice", "guess", "10.1.0.1", 10)));
        assert_eq!(
            a.login("alice", "guess", "10.1.0.1", 11)
                .unwrap()
                .unwrap_err(),
            LoginError::Bad
        );
        assert!(throttled(a.login("alice", "guess", "10.1.0.2", 11)));
        // Slowed, not locked: the right password gets in a second later.
        assert!(a
            .login("alice", "alice's password", "10.1.0.3", 12)
            .unwrap()
            .is_ok());
        // The operator's own address is not slowed at all.
        assert!(a
            .login("alice", "alice's password", home, 12)
            .unwrap()
            .is_ok());
        assert!(a
            .login("alice", "alice's password", home, 12)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn checks_under_way_take_failure_slots() {
        let (_d, a) = accounts();
        let keys = vec![
            "ip:192.0.2.7".to_string(),
            "pair:192.0.2.7 alice".to_string(),
        ];
        for _ in 0..MAX_FAILURES {
            a.reserve(&keys, 10).unwrap();
        }
        // Five checks under way: a sixth must wait for them.
        assert_eq!(a.reserve(&keys, 10), Err(1));
        // One succeeds: its slot is free again.
        a.release(&keys, false, 10).unwrap();
        a.reserve(&keys, 10).unwrap();
        for _ in 0..MAX_FAILURES {
            a.release(&keys, true, 10).unwrap();
        }
        assert_eq!(a.reserve(&keys, 11), Err(LOCK_SECS - 1));
        assert!(lock(&a.throttle).inflight.is_empty());
    }

    #[test]
    fn the_throttle_table_forgets_finished_counters() {
        let (_d, a) = accounts();
        for i in 0..MAX_THROTTLED {
            let k = vec![format!("ip:{i}")];
            a.release(&k, true, 1).unwrap();
        }
        let k = vec!["ip:late".to_string()];
        a.release(&k, true, 2 + LOCK_SECS).unwrap();
        assert_eq!(lock(&a.throttle).counts.len(), 1);
        assert_eq!(
            a.db.docs_with_prefix::<Throttle>("throttle:")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn sessions_pruned_and_capped_at_login() {
        let (_d, a) = accounts();
        a.create_user("alice", Role::User, "alice's password")
            .unwrap();
        a.create_user("bob", Role::User, "bob's password").unwrap();
        let (old, _) = a.login("bob", "bob's password", "ip", 1).unwrap().unwrap();
        let t = 1 + SESSION_SECS;
        let cookies: Vec<String> = (0..MAX_SESSIONS + 3)
            .map(|i| {
                a.login("alice", "alice's password", "ip", t + i as i64)
                    .unwrap()
                    .unwrap()
                    .0
            })
            .collect();
        // Bob's expired session is gone, from memory and from the store.
        assert!(!lock(&a.sessions).contains_key(&digest(&old)));
        assert_eq!(
            a.db.docs_with_prefix::<WebSession>("websession:")
                .unwrap()
                .len(),
            MAX_SESSIONS
        );
        // Alice keeps her newest MAX_SESSIONS.
        let now = t + 100;
        assert!(cookies[..3].iter().all(|c| a.session(c, now).is_none()));
        assert!(cookies[3..].iter().all(|c| a.session(c, now).is_some()));
    }

    #[test]
    fn roles_and_the_last_admin() {
        let (d, a) = accounts();
        a.ensure_admin(d.path(), "x").unwrap();
        assert!(Role::Admin.allows(Role::User));
        assert!(!Role::User.allows(Role::Admin));
        assert!(Role::User.allows(Role::SensorRegister));
        assert!(a.delete_user("admin").is_err());
        assert!(a.set_role("admin", Role::User).is_err());
        let k = a
            .create_user("reg", Role::SensorRegister, "0123456789")
            .unwrap();
        assert_eq!(a.by_api_key(&k).unwrap().name, "reg");
        // sensor_register accounts cannot log in.
        assert_eq!(
            a.login("reg", "0123456789", "192.0.2.1", 1)
                .unwrap()
                .unwrap_err(),
            LoginError::Bad
        );
        let k2 = a.reset_api_key("reg").unwrap();
        assert!(a.by_api_key(&k).is_none());
        assert!(a.by_api_key(&k2).is_some());
        assert!(a.create_user("bad name", Role::User, "0123456789").is_err());
        assert!(a.create_user("reg", Role::User, "0123456789").is_err());
        a.delete_user("reg").unwrap();
        assert!(a.by_api_key(&k2).is_none());
        // A role change ends the account's sessions.
        a.create_user("bob", Role::Admin, "0123456789").unwrap();
        let (c, _) = a
            .login("bob", "0123456789", "192.0.2.3", 1)
            .unwrap()
            .unwrap();
        assert!(a.session(&c, 2).is_some());
        a.set_role("bob", Role::User).unwrap();
        assert!(a.session(&c, 2).is_none());
    }
}
