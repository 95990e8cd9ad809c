//! Share sessions (KIP-932): what one member fetches from this broker, as a pure cache.
//! ShareFetch and ShareAcknowledge name a share session by (group, member) and an epoch.
//!
//! Rules (Kafka's `ShareSessionCache`):
//! - **Epoch 0** opens a session with the request's partitions (ShareFetch only; it must
//!   carry no acknowledgements). An existing session of the member is replaced, and the
//!   records it held through the old one are released. A full cache refuses a new key with
//!   SHARE_SESSION_LIMIT_REACHED.
//! - **Epoch > 0** continues: the session must exist (SHARE_SESSION_NOT_FOUND) at exactly
//!   that epoch; a wrong epoch is INVALID_SHARE_SESSION_EPOCH and ends the session (its
//!   records are released). The request adds partitions, and `forgotten` ones leave the
//!   session, their records released.
//! - **Epoch -1** is the final request: acknowledgements are applied, nothing is fetched,
//!   then the session closes and its records are released.
//! - Each accepted request moves the expected epoch on by one (wrapping to 1, never 0).
//! - A session ends when its connection closes or it is idle for longer than the idle
//!   timeout; the records of its member on its partitions are then released (Kafka does the
//!   same on disconnect, so a dead consumer's records come back without waiting for the
//!   acquisition locks).
//!
//! "Released" is returned as (group, member, partitions) for the caller to apply to the
//! share-partitions; nothing here touches them.

use std::collections::{BTreeSet, HashMap};

use super::assignor::TopicPartition;

pub const INVALID_REQUEST: i16 = 42;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;

/// The final epoch: acknowledge, then close.
pub const FINAL_EPOCH: i32 = -1;

/// (group id, member id).
pub type SessionKey = (String, String);

/// Records of `member` of `group` on `partitions` are to be released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub group: String,
    pub member: String,
    pub partitions: BTreeSet<TopicPartition>,
}

#[derive(Clone, Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<TopicPartition>,
    connection: u64,
    last_used_ms: u64,
}

/// What a ShareFetch or ShareAcknowledge may do after the session check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// The session's partitions after this request (what a fetch reads).
    pub partitions: BTreeSet<TopicPartition>,
    /// The request is the final one: fetch nothing, close after the acknowledgements.
    pub closing: bool,
    /// Records to release before anything else (a replaced session, forgotten partitions).
    pub release: Option<Release>,
}

/// What a ShareFetch asks of its session.
#[derive(Clone, Copy, Debug)]
pub struct SessionRequest<'a> {
    pub epoch: i32,
    /// Partitions named in the request (added to the session).
    pub added: &'a BTreeSet<TopicPartition>,
    /// Partitions leaving the session.
    pub forgotten: &'a BTreeSet<TopicPartition>,
    /// Whether the request carries acknowledgements.
    pub has_acks: bool,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The share sessions of this broker.
#[derive(Debug)]
pub struct SessionCache {
    sessions: HashMap<SessionKey, Session>,
    max_sessions: usize,
}

impl SessionCache {
    pub fn new(max_sessions: usize) -> SessionCache {
        SessionCache {
            sessions: HashMap::new(),
            max_sessions: max_sessions.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// A ShareFetch of `key` on `connection`.
    pub fn fetch(
        &mut self,
        key: &SessionKey,
        req: SessionRequest<'_>,
        connection: u64,
        now: u64,
    ) -> Result<Admitted, (i16, Option<Release>)> {
        let SessionRequest {
            epoch,
            added,
            forgotten,
            has_acks,
        } = req;
        if epoch == 0 {
            if has_acks {
                return Err((INVALID_REQUEST, None));
            }
            let old = self.sessions.remove(key);
            if old.is_none() && self.sessions.len() >= self.max_sessions {
                return Err((SHARE_SESSION_LIMIT_REACHED, None));
            }
            self.sessions.insert(
                key.clone(),
                Session {
                    next_epoch: 1,
                    partitions: added.clone(),
                    connection,
                    last_used_ms: now,
                },
            );
            return Ok(Admitted {
                partitions: added.clone(),
                closing: false,
                release: old.map(|s| release(key, s.partitions)),
            });
        }
        if epoch == FINAL_EPOCH && !forgotten.is_empty() {
            return Err((INVALID_REQUEST, None));
        }
        let mut a = self.check(key, epoch, now)?;
        if !a.closing {
            let s = self.sessions.get_mut(key).expect("checked");
            s.partitions.extend(added.iter().cloned());
            let gone: BTreeSet<TopicPartition> =
                forgotten.intersection(&s.partitions).cloned().collect();
            for tp in &gone {
                s.partitions.remove(tp);
            }
            s.connection = connection;
            a.partitions = s.partitions.clone();
            if !gone.is_empty() {
                a.release = Some(release(key, gone));
            }
        }
        Ok(a)
    }

    /// A ShareAcknowledge of `key` at `epoch` (0 is not allowed: it opens sessions).
    pub fn acknowledge(
        &mut self,
        key: &SessionKey,
        epoch: i32,
        now: u64,
    ) -> Result<Admitted, (i16, Option<Release>)> {
        if epoch == 0 {
            return Err((INVALID_SHARE_SESSION_EPOCH, None));
        }
        self.check(key, epoch, now)
    }

    /// Checks a request at epoch > 0 or -1 and moves the epoch on; a final request closes
    /// the session, and its records are released by the caller after the acknowledgements
    /// (`Admitted::release` is set for that, with `closing`).
    fn check(
        &mut self,
        key: &SessionKey,
        epoch: i32,
        now: u64,
    ) -> Result<Admitted, (i16, Option<Release>)> {
        let Some(s) = self.sessions.get_mut(key) else {
            return Err((SHARE_SESSION_NOT_FOUND, None));
        };
        if epoch == FINAL_EPOCH {
            let s = self.sessions.remove(key).expect("present");
            return Ok(Admitted {
                partitions: s.partitions.clone(),
                closing: true,
                release: Some(release(key, s.partitions)),
            });
        }
        if epoch != s.next_epoch {
            let s = self.sessions.remove(key).expect("present");
            return Err((
                INVALID_SHARE_SESSION_EPOCH,
                Some(release(key, s.partitions)),
            ));
        }
        s.next_epoch = next(s.next_epoch);
        s.last_used_ms = now;
        Ok(Admitted {
            partitions: s.partitions.clone(),
            closing: false,
            release: None,
        })
    }

    /// The connection closed: its sessions end.
    pub fn connection_closed(&mut self, connection: u64) -> Vec<Release> {
        self.remove_where(|s| s.connection == connection)
    }

    /// Sessions idle for longer than `idle_ms` end.
    pub fn expire(&mut self, now: u64, idle_ms: u64) -> Vec<Release> {
        self.remove_where(|s| now.saturating_sub(s.last_used_ms) > idle_ms)
    }

    fn remove_where(&mut self, f: impl Fn(&Session) -> bool) -> Vec<Release> {
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let s = self.sessions.remove(&k)?;
                Some(release(&k, s.partitions))
            })
            .collect()
    }
}

fn release(key: &SessionKey, partitions: BTreeSet<TopicPartition>) -> Release {
    Release {
        group: key.0.clone(),
        member: key.1.clone(),
        partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(v: &[i32]) -> BTreeSet<TopicPartition> {
        v.iter().map(|p| ("t".to_string(), *p)).collect()
    }

    fn r<'a>(
        epoch: i32,
        added: &'a BTreeSet<TopicPartition>,
        forgotten: &'a BTreeSet<TopicPartition>,
        has_acks: bool,
    ) -> SessionRequest<'a> {
        SessionRequest {
            epoch,
            added,
            forgotten,
            has_acks,
        }
    }

    fn key() -> SessionKey {
        ("g".into(), "m".into())
    }

    #[test]
    fn open_continue_and_close() {
        let mut c = SessionCache::new(10);
        let none = BTreeSet::new();
        let a = c
            .fetch(&key(), r(0, &tps(&[0]), &none, false), 1, 0)
            .unwrap();
        assert_eq!(a.partitions, tps(&[0]));
        assert!(a.release.is_none());
        // Epoch 1 adds a partition, epoch 2 forgets one: its records are released.
        let a = c
            .fetch(&key(), r(1, &tps(&[1]), &none, true), 1, 1)
            .unwrap();
        assert_eq!(a.partitions, tps(&[0, 1]));
        let a = c
            .fetch(&key(), r(2, &none, &tps(&[0]), false), 1, 2)
            .unwrap();
        assert_eq!(a.partitions, tps(&[1]));
        assert_eq!(a.release.unwrap().partitions, tps(&[0]));
        // Acknowledge at 3, then the final request closes and releases the rest.
        assert!(c.acknowledge(&key(), 3, 3).is_ok());
        let a = c
            .fetch(&key(), r(FINAL_EPOCH, &none, &none, true), 1, 4)
            .unwrap();
        assert!(a.closing);
        assert_eq!(a.release.unwrap().partitions, tps(&[1]));
        assert_eq!(c.len(), 0);
        assert_eq!(
            c.fetch(&key(), r(5, &none, &none, false), 1, 5)
                .unwrap_err()
                .0,
            SHARE_SESSION_NOT_FOUND
        );
    }

    #[test]
    fn wrong_epochs_and_refusals() {
        let mut c = SessionCache::new(1);
        let none = BTreeSet::new();
        assert_eq!(
            c.fetch(&key(), r(0, &tps(&[0]), &none, true), 1, 0)
                .unwrap_err()
                .0,
            INVALID_REQUEST,
            "a new session carries no acknowledgements"
        );
        c.fetch(&key(), r(0, &tps(&[0]), &none, false), 1, 0)
            .unwrap();
        let other = ("g".to_string(), "n".to_string());
        assert_eq!(
            c.fetch(&other, r(0, &tps(&[0]), &none, false), 1, 0)
                .unwrap_err()
                .0,
            SHARE_SESSION_LIMIT_REACHED
        );
        assert_eq!(
            c.acknowledge(&key(), 0, 0).unwrap_err().0,
            INVALID_SHARE_SESSION_EPOCH
        );
        let (code, rel) = c
            .fetch(&key(), r(7, &none, &none, false), 1, 0)
            .unwrap_err();
        assert_eq!(code, INVALID_SHARE_SESSION_EPOCH);
        assert_eq!(rel.unwrap().partitions, tps(&[0]));
        assert_eq!(c.len(), 0, "a wrong epoch ends the session");
        // Reopening replaces an existing session and releases the old one.
        c.fetch(&key(), r(0, &tps(&[0]), &none, false), 1, 0)
            .unwrap();
        let a = c
            .fetch(&key(), r(0, &tps(&[1]), &none, false), 2, 0)
            .unwrap();
        assert_eq!(a.release.unwrap().partitions, tps(&[0]));
    }

    #[test]
    fn disconnect_and_idle_end_sessions() {
        let mut c = SessionCache::new(10);
        let none = BTreeSet::new();
        c.fetch(&key(), r(0, &tps(&[0]), &none, false), 1, 0)
            .unwrap();
        let other = ("g".to_string(), "n".to_string());
        c.fetch(&other, r(0, &tps(&[1]), &none, false), 2, 0)
            .unwrap();
        let r = c.connection_closed(1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].member, "m");
        assert!(c.expire(1000, 5000).is_empty());
        assert_eq!(c.expire(6000, 5000).len(), 1);
        assert_eq!(c.len(), 0);
    }
}
