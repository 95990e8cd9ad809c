//! The console's static files, compiled into the binary (`assets/`): one stylesheet and
//! one small script (rates on the topics page, the lag plot on a group's page). Plain
//! CSS and JavaScript, no build step, nothing fetched from elsewhere.

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The content type and bytes of the asset `name`, if there is one.
pub fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "console.css" => Some(("text/css; charset=utf-8", CSS.as_bytes())),
        "console.js" => Some(("text/javascript; charset=utf-8", JS.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_are_there() {
        assert!(super::get("console.css").is_some());
        assert!(super::get("console.js").is_some());
        assert!(super::get("../main.rs").is_none());
    }
}
