//! The embedded assets: every page, style sheet and script, compiled into
//! the binary. Plain files under `crates/console/assets/`, no build step.

use crate::viewer::Viewer;

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its name under [`crate::ASSET_PREFIX`].
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

impl Asset {
    /// Its strong ETag.
    pub fn etag(&self) -> String {
        crate::etag_of(self.bytes)
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! assets {
    ($($name:literal => $type:expr,)*) => {
        /// Every embedded asset, by name.
        pub const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        },)*];
    };
}

assets! {
    "console.html" => HTML,
    "spectate.html" => HTML,
    "manager.html" => HTML,
    "console.css" => CSS,
    "icon.svg" => SVG,
    "blake3.js" => JS,
    "everarcade.js" => JS,
    "charts.js" => JS,
    "console.js" => JS,
    "spectate.js" => JS,
    "generic.js" => JS,
    "manager.js" => JS,
}

/// The asset called `name`, if any.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The marker in `spectate.html` that the viewer's state replaces.
const VIEWER_MARKER: &str = "<!--viewer-->";

/// `spectate.html` with the viewer's state in two `<meta>` elements, so the
/// page knows whether to load `viewer/viewer.js` without a request of its own.
pub(crate) fn spectate_page(viewer: &Viewer) -> Vec<u8> {
    let page = std::str::from_utf8(asset("spectate.html").expect("embedded").bytes)
        .expect("spectate.html is UTF-8");
    let (state, problem) = match viewer {
        Viewer::Absent => ("none", String::new()),
        Viewer::Ready(_) => ("ready", String::new()),
        Viewer::Broken(reason) => ("broken", reason.clone()),
    };
    let meta = format!(
        "<meta name=\"everarcade-viewer\" content=\"{state}\">\n<meta name=\"everarcade-viewer-problem\" content=\"{}\">",
        escape_attribute(&problem)
    );
    assert!(page.contains(VIEWER_MARKER), "spectate.html has the marker");
    page.replacen(VIEWER_MARKER, &meta, 1).into_bytes()
}

/// Text made safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(
            escape_attribute("a \"b\" <c> & d"),
            "a &quot;b&quot; &lt;c&gt; &amp; d"
        );
    }

    #[test]
    fn the_spectate_page_names_the_viewer_state() {
        let broken = spectate_page(&Viewer::Broken("x\"><script>".into()));
        let text = String::from_utf8(broken).unwrap();
        assert!(text.contains("content=\"broken\""), "{text}");
        assert!(text.contains("x&quot;&gt;&lt;script&gt;"), "{text}");
        assert!(!text.contains(VIEWER_MARKER));
        let absent = String::from_utf8(spectate_page(&Viewer::Absent)).unwrap();
        assert!(absent.contains("content=\"none\""), "{absent}");
    }
}
