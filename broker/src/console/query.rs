//! A console request's query string, decoded (`application/x-www-form-urlencoded`, as
//! browsers send forms), with typed getters whose refusals are 400s saying what is wrong.

use std::collections::BTreeMap;

use super::Failure;

/// Longest query string read; a longer one is refused.
pub const MAX_QUERY: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    /// Decodes `raw`; a parameter given twice is refused (which one would count?).
    pub fn parse(raw: &str) -> Result<Query, Failure> {
        if raw.len() > MAX_QUERY {
            return Err(Failure::bad_request(format!(
                "the query string is longer than {MAX_QUERY} bytes"
            )));
        }
        let mut params = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if params.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(Failure::bad_request(format!("parameter {k:?} given twice")));
            }
        }
        Ok(Query { params })
    }

    /// A parameter, `None` when absent or empty (an empty form field).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, Failure> {
        self.get(name)
            .ok_or_else(|| Failure::bad_request(format!("parameter {name:?} is missing")))
    }

    /// An integer parameter within `min..=max`, `None` when absent.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Failure> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Ok(_) => Err(Failure::bad_request(format!(
                "parameter {name:?} is {v:?}: it must be between {min} and {max}"
            ))),
            Err(_) => Err(Failure::bad_request(format!(
                "parameter {name:?} is {v:?}, not an integer"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_types() {
        let q = Query::parse("topic=a%2Fb+c&partition=3&offset=&x=%ZZ").unwrap();
        assert_eq!(q.get("topic"), Some("a/b c"));
        assert_eq!(q.int("partition", 0, 10).unwrap(), Some(3));
        assert_eq!(q.get("offset"), None);
        assert_eq!(q.int("offset", 0, 10).unwrap(), None);
        assert_eq!(q.get("x"), Some("%ZZ"));
    }

    #[test]
    fn refusals_are_400s_with_reasons() {
        let q = Query::parse("partition=x&limit=1000").unwrap();
        let e = q.int("partition", 0, 10).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not an integer"), "{}", e.message);
        let e = q.int("limit", 1, 100).unwrap_err();
        assert!(e.message.contains("between 1 and 100"), "{}", e.message);
        assert_eq!(q.required("topic").unwrap_err().status, 400);
        assert_eq!(Query::parse("a=1&a=2").unwrap_err().status, 400);
        assert_eq!(
            Query::parse(&"a".repeat(MAX_QUERY + 1)).unwrap_err().status,
            400
        );
        // Invalid UTF-8 after decoding is replaced, not a panic.
        assert!(Query::parse("topic=%FF%FE").is_ok());
    }
}
