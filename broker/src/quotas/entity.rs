//! Client quota entities as Kafka names them (`user`, `client-id`, each a name or the
//! default), their stored key, and which configured entity governs a request.
//!
//! Resolution follows Kafka, separately for each quota key: the first of
//! `user+client-id`, `user+<default> client-id`, `user`, `<default> user+client-id`,
//! `<default> user+<default> client-id`, `<default> user`, `client-id`,
//! `<default> client-id` that has a value for the key. A default stands for each name on its
//! own: `client-id=<default>` gives *every* client id that much, while `user=alice` is
//! shared by all of alice's clients.

use std::fmt;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// A name or the entity type's default.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    Default,
    Named(String),
}

impl Name {
    pub fn from_wire(name: Option<&str>) -> Name {
        match name {
            None => Name::Default,
            Some(n) => Name::Named(n.to_string()),
        }
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            Name::Default => None,
            Name::Named(n) => Some(n),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Default => f.write_str("<default>"),
            Name::Named(n) => f.write_str(n),
        }
    }
}

/// A quota entity: a user, a client id, or both.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub user: Option<Name>,
    pub client_id: Option<Name>,
}

impl Entity {
    /// From (entity type, name) pairs; Err for unknown or repeated types or no pair.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Entity, String> {
        let mut e = Entity {
            user: None,
            client_id: None,
        };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                other => {
                    return Err(format!(
                        "quota entity type {other:?} is not supported by phxq (user, client-id)"
                    ))
                }
            };
            if slot.is_some() {
                return Err(format!("entity type {kind} given twice"));
            }
            *slot = Some(Name::from_wire(name));
        }
        if e.user.is_none() && e.client_id.is_none() {
            return Err("an entity needs a user or a client-id".into());
        }
        Ok(e)
    }

    /// (entity type, name) pairs, as the wire has them.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.push((USER, u.to_wire()));
        }
        if let Some(c) = &self.client_id {
            v.push((CLIENT_ID, c.to_wire()));
        }
        v
    }

    /// The key it is stored under: `user=alice/client-id=<default>`; names are
    /// percent-encoded so that `/`, `=` and `<` in them cannot be confused.
    pub fn key(&self) -> String {
        let enc = |n: &Name| match n {
            Name::Default => "<default>".to_string(),
            Name::Named(s) => s
                .chars()
                .map(|c| match c {
                    '%' | '/' | '=' | '<' => format!("%{:02X}", c as u32),
                    c => c.to_string(),
                })
                .collect(),
        };
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(format!("{USER}={}", enc(u)));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("{CLIENT_ID}={}", enc(c)));
        }
        parts.join("/")
    }

    /// The entities that may govern a request of `user` with `client_id`, in Kafka's order.
    pub fn candidates(user: &str, client_id: &str) -> [Entity; 8] {
        let (u, c) = (
            Name::Named(user.to_string()),
            Name::Named(client_id.to_string()),
        );
        let e = |user: Option<&Name>, client: Option<&Name>| Entity {
            user: user.cloned(),
            client_id: client.cloned(),
        };
        let d = Name::Default;
        [
            e(Some(&u), Some(&c)),
            e(Some(&u), Some(&d)),
            e(Some(&u), None),
            e(Some(&d), Some(&c)),
            e(Some(&d), Some(&d)),
            e(Some(&d), None),
            e(None, Some(&c)),
            e(None, Some(&d)),
        ]
    }

    /// The entity a matched quota is metered for: defaults replaced by the request's own
    /// names (each client id has its own share of a default).
    pub fn metered(&self, user: &str, client_id: &str) -> Entity {
        let own = |n: &Option<Name>, mine: &str| {
            n.as_ref().map(|n| match n {
                Name::Default => Name::Named(mine.to_string()),
                named => named.clone(),
            })
        };
        Entity {
            user: own(&self.user, user),
            client_id: own(&self.client_id, client_id),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.unwrap_or("<default>")))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unambiguous() {
        let a = Entity::from_parts([(CLIENT_ID, Some("a/user=b"))]).unwrap();
        let b = Entity::from_parts([(CLIENT_ID, Some("a")), (USER, Some("b"))]).unwrap();
        assert_ne!(a.key(), b.key());
        let d = Entity::from_parts([(CLIENT_ID, None)]).unwrap();
        let lit = Entity::from_parts([(CLIENT_ID, Some("<default>"))]).unwrap();
        assert_ne!(d.key(), lit.key());
        assert!(Entity::from_parts([("ip", Some("1.2.3.4"))]).is_err());
        assert!(Entity::from_parts([(USER, None), (USER, None)]).is_err());
        assert!(Entity::from_parts(std::iter::empty()).is_err());
    }

    #[test]
    fn defaults_are_metered_per_name_and_named_users_shared() {
        let cands = Entity::candidates("alice", "app");
        assert_eq!(cands[0].to_string(), "user=alice,client-id=app");
        assert_eq!(cands[7].to_string(), "client-id=<default>");
        assert_eq!(
            cands[7].metered("alice", "app").to_string(),
            "client-id=app"
        );
        let user_only = &cands[2];
        assert_eq!(
            user_only.metered("alice", "other").to_string(),
            "user=alice"
        );
    }
}
