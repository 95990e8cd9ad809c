//! IncrementalAlterConfigs operations on one resource's explicitly set configs (a name ->
//! value map): SET, DELETE, and, for LIST configs, APPEND and SUBTRACT with Kafka's
//! semantics. The resource's own rules (which names exist, which are lists, what values
//! are valid) are given by the caller; the result is validated by the caller like a SET.

use std::collections::BTreeMap;

/// One operation on one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set(String, String),
    Delete(String),
    /// Adds each comma-separated value not in the list yet, at its end.
    Append(String, String),
    /// Removes each comma-separated value from the list.
    Subtract(String, String),
}

/// The items of a LIST config value (comma-separated, blanks around items ignored).
pub fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect()
}

/// Applies `ops` in order to `values`. `list_default(name)` says whether `name` is a LIST
/// config, and if so what its value is when it is not set (APPEND and SUBTRACT start from
/// it, as Kafka does); an `Err` is the reason APPEND and SUBTRACT do not apply to it.
pub fn apply(
    mut values: BTreeMap<String, String>,
    ops: &[Op],
    list_default: impl Fn(&str) -> Result<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    for op in ops {
        match op {
            Op::Set(k, v) => {
                values.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                values.remove(k);
            }
            Op::Append(k, v) | Op::Subtract(k, v) => {
                let default = list_default(k)?;
                let current = values.get(k).cloned().unwrap_or(default);
                let mut items: Vec<String> =
                    list_items(&current).into_iter().map(String::from).collect();
                for item in list_items(v) {
                    if matches!(op, Op::Append(..)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                values.insert(k.clone(), items.join(","));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(name: &str) -> Result<String, String> {
        match name {
            "policy" => Ok("delete".into()),
            "replicas" => Ok(String::new()),
            other => Err(format!("{other} is not a list")),
        }
    }

    fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_and_delete() {
        let v = apply(
            map(&[("a", "1")]),
            &[Op::Set("b".into(), "2".into()), Op::Delete("a".into())],
            lists,
        )
        .unwrap();
        assert_eq!(v, map(&[("b", "2")]));
    }

    #[test]
    fn append_adds_missing_values_to_the_current_or_default_list() {
        let v = apply(
            BTreeMap::new(),
            &[Op::Append("policy".into(), "compact".into())],
            lists,
        )
        .unwrap();
        assert_eq!(v, map(&[("policy", "delete,compact")]));
        let v = apply(
            map(&[("replicas", "0:1")]),
            &[Op::Append("replicas".into(), "0:1, 1:2".into())],
            lists,
        )
        .unwrap();
        assert_eq!(v, map(&[("replicas", "0:1,1:2")]));
    }

    #[test]
    fn subtract_removes_values_and_absent_ones_are_no_op() {
        let v = apply(
            BTreeMap::new(),
            &[Op::Subtract("policy".into(), "compact".into())],
            lists,
        )
        .unwrap();
        assert_eq!(v, map(&[("policy", "delete")]));
        let v = apply(
            map(&[("replicas", "0:1,1:2")]),
            &[Op::Subtract("replicas".into(), "0:1".into())],
            lists,
        )
        .unwrap();
        assert_eq!(v, map(&[("replicas", "1:2")]));
    }

    #[test]
    fn list_ops_on_other_configs_are_refused() {
        let set = map(&[("a", "1")]);
        assert!(apply(set, &[Op::Append("a".into(), "2".into())], lists).is_err());
        assert!(apply(
            BTreeMap::new(),
            &[Op::Subtract("b".into(), "2".into())],
            lists
        )
        .is_err());
    }
}
