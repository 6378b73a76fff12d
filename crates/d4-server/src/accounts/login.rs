//! Logins, browser sessions and password changes.
//!
//! Browser sessions: the SHA-256 of the cookie, a CSRF token, 12 h; at most
//! 32 per account, the oldest ending first; expired ones removed at each
//! login. Failed-login counters (whether an account has the name or not),
//! all written in one commit, so that an attacker slows themselves and not
//! the operator:
//! - per (address, account): 5 failures in 5 minutes lock that pair for
//!   5 minutes (the same account from another address is not locked);
//! - per address, across names: 20 failures lock the address;
//! - per account, from all addresses: past 100 failures in 5 minutes its
//!   checks are slowed (one at a time, one a second), never locked, and an
//!   address the account logged in from lately (16 kept) is not slowed.
//!
//! A password check under way holds a slot on each counter, so parallel
//! attempts get no more. The counters are bounded (10,000: past that the
//! finished ones are forgotten, then the tenth idle the longest, account
//! counters last).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::*;

/// How a failed-login counter limits: how many failures it allows, and
/// whether reaching that locks (addresses and pairs) or only slows (accounts).
fn rule(key: &str) -> (u32, bool) {
    if key.starts_with("user:") {
        (ACCOUNT_SLOW_AFTER, false)
    } else if key.starts_with("pair:") {
        (MAX_FAILURES, true)
    } else {
        (MAX_ADDRESS_FAILURES, true)
    }
}

/// Whether a counter still counts at `now` (locked, or inside its window).
fn live(t: &Throttle, now: i64) -> bool {
    t.locked_until > now || now - t.first <= LOCK_SECS
}

impl Accounts {
    /// Atomically: refuses if any key is locked or has its failure slots
    /// all taken (failures so far plus checks under way), otherwise takes a
    /// slot on every key. An account past its limit is not locked: it
    /// admits one check at a time, one a second. Returns how long to wait
    /// when refused.
    pub(super) fn reserve(&self, keys: &[String], now: i64) -> std::result::Result<(), i64> {
        let mut st = lock(&self.throttle);
        let mut wait = None;
        for k in keys {
            let t = st
                .counts
                .get(k)
                .copied()
                .filter(|t| live(t, now))
                .unwrap_or_default();
            let busy = st.inflight.get(k).copied().unwrap_or(0);
            let (max, locks) = rule(k);
            if locks && t.locked_until > now {
                wait = wait.max(Some(t.locked_until - now));
            } else if t.failures + busy >= max && (locks || busy > 0 || now - t.last < 1) {
                // The checks under way may all fail: wait for them (or,
                // for a slowed account, for the next second).
                wait = wait.max(Some(1));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        for k in keys {
            *st.inflight.entry(k.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Ends the checks [`Self::reserve`] started: frees their slots and, for
    /// a failure, counts it on every key (one store commit).
    pub(super) fn release(&self, keys: &[String], failed: bool, now: i64) -> Result<()> {
        let mut stale = Vec::new();
        let mut docs = Vec::new();
        {
            let mut st = lock(&self.throttle);
            for k in keys {
                if let Some(n) = st.inflight.get_mut(k) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        st.inflight.remove(k);
                    }
                }
            }
            if failed {
                let all = &mut st.counts;
                // Bounded: past MAX_THROTTLED entries, the finished ones are
                // forgotten; if that is not enough (a guess from more
                // addresses than that within the window), the tenth of the
                // address and pair counters idle the longest (accounts last).
                if all.len() >= MAX_THROTTLED {
                    all.retain(|k, t| {
                        let keep = live(t, now);
                        if !keep {
                            stale.push(k.clone());
                        }
                        keep
                    });
                }
                if all.len() >= MAX_THROTTLED {
                    let mut by_age: Vec<(bool, i64, String)> = all
                        .iter()
                        .map(|(k, t)| (k.starts_with("user:"), t.last, k.clone()))
                        .collect();
                    by_age.sort();
                    for (_, _, k) in by_age.into_iter().take(MAX_THROTTLED / 10) {
                        all.remove(&k);
                        stale.push(k);
                    }
                }
                for key in keys {
                    let t = all.entry(key.clone()).or_default();
                    if now - t.first > LOCK_SECS {
                        *t = Throttle {
                            first: now,
                            ..Throttle::default()
                        };
                    }
                    t.failures += 1;
                    t.last = now;
                    let (max, locks) = rule(key);
                    if locks && t.failures >= max {
                        t.locked_until = now + LOCK_SECS;
                    }
                    docs.push((format!("throttle:{key}"), *t));
                }
            }
        }
        if !stale.is_empty() {
            // One commit for all the forgotten counters.
            self.db.write(|tx| {
                let mut t = tx.open_table(crate::store::db::KV)?;
                for k in &stale {
                    t.remove(format!("throttle:{k}").as_str())?;
                }
                Ok(())
            })?;
        }
        if docs.is_empty() {
            return Ok(());
        }
        self.db.put_docs(&docs)
    }

    /// The counters a login from `ip` as `name` counts on: the address;
    /// the (address, account) pair and the account when the name is valid,
    /// the account only from an address it has not logged in from lately.
    fn throttle_keys(&self, name: &str, ip: &str) -> Vec<String> {
        let mut keys = vec![format!("ip:{ip}")];
        if valid_name(name) {
            keys.push(format!("pair:{ip} {name}"));
            let known = lock(&self.throttle)
                .known
                .get(name)
                .is_some_and(|a| a.iter().any(|a| a == ip));
            if !known {
                keys.push(format!("user:{name}"));
            }
        }
        keys
    }

    /// Checks a login: throttled (per address, per address and account, and
    /// per account — see the module doc), then the password. Returns the new
    /// session's cookie value and the session.
    ///
    /// The throttle check and a failure slot are taken together, before the
    /// password is checked, so parallel attempts get no more than
    /// [`MAX_FAILURES`] checks.
    pub(crate) fn login(
        &self,
        name: &str,
        password: &str,
        ip: &str,
        now: i64,
    ) -> Result<std::result::Result<(String, WebSession), LoginError>> {
        let user = self.get(name).filter(|u| u.role != Role::SensorRegister);
        // Failures count on the name whether an account has it or not: the
        // same work and the same store commit (all counters in one) either
        // way, so neither timing nor locks tell which names exist.
        let keys = self.throttle_keys(name, ip);
        if let Err(wait) = self.reserve(&keys, now) {
            return Ok(Err(LoginError::Throttled(wait)));
        }
        let ok = match &user {
            Some(u) => check_password(&u.password_hash, password),
            None => {
                // As slow as a real check, so that names cannot be probed by timing.
                let _ = hash_password(password);
                false
            }
        };
        self.release(&keys, !ok, now)?;
        if !ok {
            return Ok(Err(LoginError::Bad));
        }
        let pair_key = format!("pair:{ip} {name}");
        let cleared = {
            let mut st = lock(&self.throttle);
            let known = st.known.entry(name.to_string()).or_default();
            known.retain(|a| a != ip);
            known.push(ip.to_string());
            if known.len() > KNOWN_ADDRESSES {
                known.remove(0);
            }
            st.counts.remove(&pair_key).is_some()
        };
        if cleared {
            self.db.delete_doc(&format!("throttle:{pair_key}"))?;
        }
        let cookie = random_secret();
        let s = WebSession {
            user: name.to_string(),
            csrf: random_secret(),
            expires: now + SESSION_SECS,
        };
        let id = digest(&cookie);
        // Expired sessions go, and the account's oldest past MAX_SESSIONS.
        let gone: Vec<String> = {
            let mut all = lock(&self.sessions);
            let mut gone: Vec<String> = all
                .iter()
                .filter(|(_, w)| w.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut mine: Vec<(i64, String)> = all
                .iter()
                .filter(|(_, w)| w.user == name && w.expires > now)
                .map(|(k, w)| (w.expires, k.clone()))
                .collect();
            if mine.len() >= MAX_SESSIONS {
                mine.sort();
                let extra = mine.len() + 1 - MAX_SESSIONS;
                gone.extend(mine.into_iter().take(extra).map(|(_, k)| k));
            }
            for k in &gone {
                all.remove(k);
            }
            all.insert(id.clone(), s.clone());
            gone
        };
        let doc = serde_json::to_vec(&s)?;
        self.db.write(|tx| {
            let mut t = tx.open_table(crate::store::db::KV)?;
            for k in &gone {
                t.remove(format!("websession:{k}").as_str())?;
            }
            t.insert(format!("websession:{id}").as_str(), doc.as_slice())?;
            Ok(())
        })?;
        Ok(Ok((cookie, s)))
    }

    /// The session a cookie opens, and its account.
    pub(crate) fn session(&self, cookie: &str, now: i64) -> Option<(WebSession, User)> {
        let s = lock(&self.sessions).get(&digest(cookie)).cloned()?;
        if s.expires <= now {
            return None;
        }
        let u = self.get(&s.user)?;
        Some((s, u))
    }

    /// Ends a session.
    pub(crate) fn logout(&self, cookie: &str) -> Result<()> {
        let id = digest(cookie);
        if lock(&self.sessions).remove(&id).is_some() {
            self.db.delete_doc(&format!("websession:{id}"))?;
        }
        Ok(())
    }

    /// Changes a password (the old one must be right); clears the
    /// must-change flag; ends the account's other sessions (all but the one
    /// of cookie `keep`). For the first admin, removes DEFAULT_PASSWORD.
    pub(crate) fn change_password(
        &self,
        name: &str,
        old: &str,
        new: &str,
        data_dir: &Path,
        keep: Option<&str>,
    ) -> Result<()> {
        let mut u = self.get(name).ok_or_else(|| anyhow!("no user {name:?}"))?;
        if !check_password(&u.password_hash, old) {
            bail!("the current password is wrong");
        }
        if old == new {
            bail!("the new password must differ from the current one");
        }
        check_new_password(new)?;
        u.password_hash = hash_password(new)?;
        u.must_change_password = false;
        self.save_user(&u)?;
        lock(&self.users).insert(u.name.clone(), u);
        self.end_sessions(name, keep)?;
        let f = data_dir.join(DEFAULT_PASSWORD_FILE);
        if name == "admin" && f.exists() {
            std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
        }
        Ok(())
    }
}
