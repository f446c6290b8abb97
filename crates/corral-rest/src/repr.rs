//! Representations: one element tree rendered as RHEV XML or as JSON, and parsed back from request bodies.
//! JSON follows the XML tree: element names and attributes become keys, repeated elements become arrays.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

/// Deeper request bodies are refused; real ones nest a handful of levels.
const MAX_DEPTH: usize = 32;
/// A request body's elements at most: the largest real ones (a vm with its devices) have a few hundred.
const MAX_ELEMENTS: usize = 10_000;
/// An element's attributes at most: RHEV's carry a handful. quick-xml checks every attribute against the ones
/// before it for duplicates, so an unbounded count costs the square of it (60,000 took seconds of CPU).
const MAX_ATTRIBUTES: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Names and attribute keys are nearly always literals; borrowing them keeps a 1,000-vm list from
    /// allocating ~90,000 small strings.
    pub name: Cow<'static, str>,
    pub attrs: Vec<(Cow<'static, str>, String)>,
    pub text: Option<String>,
    pub children: Vec<Node>,
    /// Collections render as arrays in JSON even when they hold zero or one item.
    pub list: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprError(pub String);

impl Node {
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Node { name: name.into(), ..Node::default() }
    }

    pub fn collection(name: impl Into<Cow<'static, str>>) -> Self {
        Node { name: name.into(), list: true, ..Node::default() }
    }

    pub fn leaf(name: impl Into<Cow<'static, str>>, text: impl Into<String>) -> Self {
        Node { name: name.into(), text: Some(text.into()), ..Node::default() }
    }

    pub fn attr(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.attrs.push((key.into(), value.into()));
        self
    }

    pub fn child(mut self, node: Node) -> Self {
        self.children.push(node);
        self
    }

    pub fn with_leaf(self, name: impl Into<Cow<'static, str>>, text: impl Into<String>) -> Self {
        self.child(Node::leaf(name, text))
    }

    pub fn push(&mut self, node: Node) {
        self.children.push(node);
    }

    pub fn get(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn attr_of(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The text of a direct child element.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|c| c.text.as_deref())
    }

    /// The text of child `name` when it is given, an empty element being an empty text (for names, where an
    /// empty one is refused rather than read as no name at all).
    pub fn given_text(&self, name: &str) -> Option<&str> {
        self.get(name).map(|c| c.text.as_deref().unwrap_or_default())
    }

    /// Text at a `/`-separated path of child elements.
    pub fn path(&self, path: &str) -> Option<&Node> {
        path.split('/').try_fold(self, |node, part| node.get(part))
    }

    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = XmlWriter::new(Vec::new());
        w.node(self, 0);
        w.finish()
    }

    /// The collection `name` of `item` elements, each tree built, written and dropped before the next:
    /// the same bytes as [`Node::to_xml`] of the whole collection without holding every item's tree at once.
    pub fn collection_xml(name: &str, items: impl Iterator<Item = Node>, capacity: usize) -> Vec<u8> {
        let mut w = XmlWriter::new(Vec::with_capacity(capacity));
        let mut items = items.peekable();
        if items.peek().is_none() {
            w.start(name, &[], 0, true);
        } else {
            w.start(name, &[], 0, false);
            for item in items {
                w.node(&item, 1);
            }
            w.end(name, 0);
        }
        w.finish()
    }

    /// The JSON twin of [`Node::collection_xml`]: `{"<item>":[…]}`, or `{}` when there is none.
    pub fn collection_json(item: &str, items: impl Iterator<Item = Node>, capacity: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity);
        for (i, node) in items.enumerate() {
            if i == 0 {
                out.push(b'{');
                json_string(&mut out, item);
                out.extend_from_slice(b":[");
            } else {
                out.push(b',');
            }
            node.write_json(&mut out);
        }
        out.extend_from_slice(if out.is_empty() { b"{}" } else { b"]}" });
        out
    }

    /// The bytes of `self.to_json().to_string()`, written without building the `Value` tree (whose maps
    /// sort their keys: so do we).
    pub fn json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        enum Member<'a> {
            Attr(&'a str),
            Text(&'a str),
            Children(&'a str),
        }
        if !self.list && self.children.is_empty() && self.attrs.is_empty() {
            match &self.text {
                Some(t) => json_string(out, t),
                None => out.extend_from_slice(b"{}"),
            }
            return;
        }
        // Insertion order as `to_json` inserts (attributes, text, children), so a later duplicate key wins
        // as it does there; then the map's key order.
        let mut members: Vec<(&str, Member<'_>)> = Vec::new();
        if !self.list {
            members.extend(self.attrs.iter().map(|(k, v)| (k.as_ref(), Member::Attr(v))));
            if let Some(t) = &self.text {
                members.push(("value", Member::Text(t)));
            }
        }
        for c in &self.children {
            if !members.iter().any(|(k, m)| matches!(m, Member::Children(_)) && *k == c.name) {
                members.push((c.name.as_ref(), Member::Children(c.name.as_ref())));
            }
        }
        members.reverse();
        members.sort_by(|a, b| a.0.cmp(b.0));
        members.dedup_by(|later, earlier| later.0 == earlier.0);
        out.push(b'{');
        for (i, (key, member)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(out, key);
            out.push(b':');
            match member {
                Member::Attr(v) | Member::Text(v) => json_string(out, v),
                Member::Children(name) => {
                    let mut same = self.children.iter().filter(|c| c.name == *name).peekable();
                    let first = same.next();
                    let single = same.peek().is_none() && *name != "link" && !self.list;
                    match first {
                        Some(only) if single => only.write_json(out),
                        _ => {
                            out.push(b'[');
                            for (j, c) in first.into_iter().chain(same).enumerate() {
                                if j > 0 {
                                    out.push(b',');
                                }
                                c.write_json(out);
                            }
                            out.push(b']');
                        }
                    }
                }
            }
        }
        out.push(b'}');
    }

    pub fn to_json(&self) -> Value {
        if self.list {
            let mut map = Map::new();
            let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
            for c in &self.children {
                match groups.iter_mut().find(|(n, _)| *n == c.name) {
                    Some((_, v)) => v.push(c.to_json()),
                    None => groups.push((&c.name, vec![c.to_json()])),
                }
            }
            for (name, values) in groups {
                map.insert(name.to_string(), Value::Array(values));
            }
            return Value::Object(map);
        }
        if self.children.is_empty() && self.attrs.is_empty() {
            return self.text.clone().map_or(Value::Object(Map::new()), Value::String);
        }
        let mut map = Map::new();
        for (k, v) in &self.attrs {
            map.insert(k.to_string(), Value::String(v.clone()));
        }
        if let Some(t) = &self.text {
            map.insert("value".into(), Value::String(t.clone()));
        }
        let mut names: Vec<&str> = Vec::new();
        for c in &self.children {
            if !names.contains(&c.name.as_ref()) {
                names.push(&c.name);
            }
        }
        for name in names {
            let same: Vec<&Node> = self.children.iter().filter(|c| c.name == name).collect();
            // A nested collection renders as its own object of arrays; only repeated elements (and
            // links, which clients expect as a list) become arrays here.
            let value = if same.len() == 1 && name != "link" {
                same[0].to_json()
            } else {
                Value::Array(same.iter().map(|c| c.to_json()).collect())
            };
            map.insert(name.to_string(), value);
        }
        Value::Object(map)
    }

    pub fn parse_xml(body: &[u8]) -> Result<Node, ReprError> {
        let mut reader = Reader::from_reader(body);
        reader.config_mut().trim_text(true);
        let mut stack: Vec<Node> = Vec::new();
        let mut root: Option<Node> = None;
        let mut buf = Vec::new();
        let mut elements = 0usize;
        let mut count_element = || {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(ReprError(format!("XML with more than {MAX_ELEMENTS} elements is not accepted")));
            }
            Ok(())
        };
        loop {
            let event = reader.read_event_into(&mut buf).map_err(|e| ReprError(format!("Malformed XML: {e}")))?;
            if matches!(event, Event::Start(_) | Event::Empty(_)) {
                count_element()?;
            }
            match event {
                Event::Start(e) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ReprError("XML nests too deeply".into()));
                    }
                    stack.push(start_node(&e)?);
                }
                Event::Empty(e) => {
                    let node = start_node(&e)?;
                    attach(&mut stack, &mut root, node)?;
                }
                Event::Text(t) => {
                    let text = t.unescape().map_err(|e| ReprError(format!("Malformed XML text: {e}")))?;
                    xml_chars(&text)?;
                    if let Some(top) = stack.last_mut() {
                        top.text.get_or_insert_with(String::new).push_str(&text);
                    } else if !text.trim().is_empty() {
                        return Err(ReprError("Text outside the root element".into()));
                    }
                }
                Event::CData(t) => {
                    let text = std::str::from_utf8(&t).map_err(|_| ReprError("CDATA is not UTF-8".into()))?;
                    xml_chars(text)?;
                    if let Some(top) = stack.last_mut() {
                        top.text.get_or_insert_with(String::new).push_str(text);
                    }
                }
                Event::End(_) => {
                    let node = stack.pop().ok_or_else(|| ReprError("Unbalanced XML".into()))?;
                    attach(&mut stack, &mut root, node)?;
                }
                Event::Eof => break,
                Event::DocType(_) => return Err(ReprError("DOCTYPE is not allowed".into())),
                _ => {}
            }
            buf.clear();
        }
        if !stack.is_empty() {
            return Err(ReprError("Unclosed XML element".into()));
        }
        root.ok_or_else(|| ReprError("Empty XML document".into()))
    }

    /// A JSON body as the element `root`: objects become elements, arrays repeat their key, scalars become text.
    pub fn parse_json(body: &[u8], root: &str) -> Result<Node, ReprError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| ReprError(format!("Malformed JSON: {e}")))?;
        let mut budget = MAX_ELEMENTS;
        json_node(root, &value, 0, &mut budget)
    }
}

/// `budget` is how many more elements the body may make.
fn json_node(name: &str, value: &Value, depth: usize, budget: &mut usize) -> Result<Node, ReprError> {
    if depth > MAX_DEPTH {
        return Err(ReprError("JSON nests too deeply".into()));
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| ReprError(format!("JSON with more than {MAX_ELEMENTS} elements is not accepted")))?;
    let mut node = Node::new(name.to_string());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        for item in items {
                            node.push(json_node(k, item, depth + 1, budget)?);
                        }
                    }
                    Value::String(s) if matches!(k.as_str(), "id" | "href") => {
                        node.attrs.push((Cow::Owned(k.clone()), s.clone()))
                    }
                    _ => node.push(json_node(k, v, depth + 1, budget)?),
                }
            }
        }
        Value::String(s) => node.text = Some(s.clone()),
        Value::Number(n) => node.text = Some(n.to_string()),
        Value::Bool(b) => node.text = Some(b.to_string()),
        Value::Null => {}
        Value::Array(_) => return Err(ReprError("Unexpected JSON array".into())),
    }
    Ok(node)
}

fn start_node(e: &BytesStart<'_>) -> Result<Node, ReprError> {
    let mut node = Node::new(utf8_name(e.name().as_ref())?);
    for (i, a) in e.attributes().enumerate() {
        if i == MAX_ATTRIBUTES {
            return Err(ReprError(format!(
                "An XML element with more than {MAX_ATTRIBUTES} attributes is not accepted"
            )));
        }
        let a = a.map_err(|err| ReprError(format!("Malformed XML attribute: {err}")))?;
        let value = a.unescape_value().map_err(|err| ReprError(format!("Malformed XML attribute: {err}")))?;
        xml_chars(&value)?;
        node.attrs.push((Cow::Owned(utf8_name(a.key.as_ref())?), value.into_owned()));
    }
    Ok(node)
}

fn utf8_name(bytes: &[u8]) -> Result<String, ReprError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ReprError("An XML name is not UTF-8".into()))
}

/// Refuses the characters XML 1.0 does not allow in a document (NUL and most other control characters,
/// U+FFFE, U+FFFF), which quick-xml passes through.
fn xml_chars(text: &str) -> Result<(), ReprError> {
    let illegal =
        |c: char| matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    match text.chars().find(|c| illegal(*c)) {
        Some(c) => Err(ReprError(format!("XML cannot hold the character U+{:04X}", u32::from(c)))),
        None => Ok(()),
    }
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), ReprError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(ReprError("More than one root element".into())),
    }
    Ok(())
}

/// RHEV XML as the SDK and the guide show it: the declaration, then one element per line indented by four
/// spaces, text inline. Written by hand rather than through quick-xml's writer because the list of every vm
/// is the hottest rendering and the writer allocated per element; the test below holds the two equal.
struct XmlWriter {
    out: Vec<u8>,
    /// Text was just written: the next tag follows it on the same line.
    after_text: bool,
}

impl XmlWriter {
    fn new(mut out: Vec<u8>) -> Self {
        out.extend_from_slice(br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#);
        XmlWriter { out, after_text: false }
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'\n');
        self.out
    }

    fn indent(&mut self, depth: usize) {
        if std::mem::take(&mut self.after_text) {
            return;
        }
        self.out.push(b'\n');
        self.out.resize(self.out.len() + depth * 4, b' ');
    }

    fn start(&mut self, name: &str, attrs: &[(Cow<'static, str>, String)], depth: usize, empty: bool) {
        self.indent(depth);
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (k, v) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_into(&mut self.out, v);
            self.out.push(b'"');
        }
        self.out.extend_from_slice(if empty { b"/>" } else { b">" });
    }

    fn end(&mut self, name: &str, depth: usize) {
        self.indent(depth);
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    fn node(&mut self, node: &Node, depth: usize) {
        let empty = node.children.is_empty() && node.text.is_none();
        self.start(&node.name, &node.attrs, depth, empty);
        if empty {
            return;
        }
        if let Some(t) = &node.text {
            escape_into(&mut self.out, t);
            self.after_text = true;
        }
        for c in &node.children {
            self.node(c, depth + 1);
        }
        self.end(&node.name, depth);
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// The five XML special characters as entities, in text and in attribute values alike. Control characters
/// XML 1.0 cannot carry at all (a file name may hold one) become U+FFFD, so the document stays well-formed.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, b) in bytes.iter().enumerate() {
        let entity: &[u8] = match b {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            0..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(entity);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_round_trip_keeps_attributes_text_and_order() {
        let n = Node::new("vm")
            .attr("id", "1")
            .with_leaf("name", "a<b")
            .child(Node::new("status").with_leaf("state", "up"));
        let parsed = Node::parse_xml(&n.to_xml()).unwrap();
        assert_eq!(parsed.attr_of("id"), Some("1"));
        assert_eq!(parsed.text_of("name"), Some("a<b"));
        assert_eq!(parsed.path("status/state").and_then(|s| s.text.as_deref()), Some("up"));
    }

    #[test]
    fn xml_declaration_is_the_one_the_sdk_expects() {
        let xml = String::from_utf8(Node::new("fault").to_xml()).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"), "{xml}");
    }

    #[test]
    fn collections_are_arrays_in_json() {
        let c = Node::collection("vms").child(Node::new("vm").attr("id", "1"));
        assert_eq!(c.to_json(), serde_json::json!({"vm": [{"id": "1"}]}));
        assert_eq!(Node::collection("vms").to_json(), serde_json::json!({}));
    }

    /// quick-xml's indenting writer, the reference the hand-written one must match byte for byte.
    fn quick_xml_rendering(node: &Node) -> Vec<u8> {
        use quick_xml::events::{BytesDecl, BytesEnd, BytesText};
        fn write(w: &mut quick_xml::Writer<Vec<u8>>, node: &Node) {
            let mut start = BytesStart::new(node.name.as_ref());
            for (k, v) in &node.attrs {
                start.push_attribute((k.as_ref(), v.as_str()));
            }
            if node.children.is_empty() && node.text.is_none() {
                w.write_event(Event::Empty(start)).unwrap();
                return;
            }
            w.write_event(Event::Start(start)).unwrap();
            if let Some(t) = &node.text {
                w.write_event(Event::Text(BytesText::new(t))).unwrap();
            }
            for c in &node.children {
                write(w, c);
            }
            w.write_event(Event::End(BytesEnd::new(node.name.as_ref()))).unwrap();
        }
        let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 4);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), Some("yes")))).unwrap();
        write(&mut w, node);
        let mut out = w.into_inner();
        out.push(b'\n');
        out
    }

    #[test]
    fn hand_written_xml_matches_quick_xml() {
        let trees = [
            Node::new("fault").with_leaf("reason", "Operation Failed").with_leaf("detail", "[a <b> & 'c' \"d\"]"),
            Node::collection("vms"),
            Node::new("vm")
                .attr("href", "/api/vms/1?x=<&>\"'")
                .attr("id", "1")
                .child(Node::new("actions").child(Node::new("link").attr("rel", "start")))
                .with_leaf("name", "")
                .with_leaf("description", "caf\u{e9} \u{1F600}")
                .child(Node::new("status").with_leaf("state", "up"))
                .child(Node::leaf("mixed", "text").child(Node::leaf("inner", "x")).child(Node::new("empty"))),
        ];
        for tree in &trees {
            assert_eq!(
                String::from_utf8(tree.to_xml()).unwrap(),
                String::from_utf8(quick_xml_rendering(tree)).unwrap()
            );
        }
    }

    #[test]
    fn parsing_refuses_characters_xml_cannot_hold_and_bytes_that_are_not_utf8() {
        for bad in [
            &b"<a>x\0y</a>"[..],
            b"<a>\x01</a>",
            b"<a b=\"\x1f\"/>",
            b"<a><![CDATA[\x00]]></a>",
            b"<a><![CDATA[\xc3\x28]]></a>",
            b"<a>\xff</a>",
            b"<a\xff/>",
            b"<a \xfe=\"1\"/>",
            "<a>\u{fffe}</a>".as_bytes(),
        ] {
            assert!(Node::parse_xml(bad).is_err(), "accepted {bad:?}");
        }
        let fine = Node::parse_xml("<a b=\"\t\">x\r\ny\u{e9}<![CDATA[<z>]]></a>".as_bytes()).expect("well-formed");
        assert_eq!(fine.text.as_deref(), Some("x\r\ny\u{e9}<z>"));
    }

    #[test]
    fn control_characters_xml_cannot_carry_are_replaced() {
        let xml =
            String::from_utf8(Node::new("file").attr("id", "a\u{1}b").with_leaf("name", "c\u{1f}d\te\nf").to_xml())
                .unwrap();

        assert!(xml.contains("id=\"a\u{fffd}b\"") && xml.contains("<name>c\u{fffd}d\te\nf</name>"), "{xml}");
    }

    #[test]
    fn hand_written_json_matches_serde_json() {
        let trees = [
            Node::leaf("name", "a\"b\\c\n\u{1}é"),
            Node::new("empty"),
            Node::collection("vms"),
            Node::collection("vms").child(Node::new("vm").attr("id", "1")).child(Node::new("tag").attr("id", "2")),
            Node::new("vm")
                .attr("href", "/x")
                .attr("id", "1")
                .attr("name", "attr loses to the child")
                .child(Node::new("link").attr("rel", "a"))
                .with_leaf("name", "vm1")
                .with_leaf("zeta", "z")
                .with_leaf("alpha", "1")
                .with_leaf("alpha", "2")
                .child(Node::collection("nics").child(Node::new("nic")))
                .child(Node::leaf("mixed", "t").attr("k", "v")),
            Node::leaf("value-clash", "text").child(Node::leaf("value", "child")),
        ];
        for tree in &trees {
            assert_eq!(String::from_utf8(tree.json_bytes()).unwrap(), tree.to_json().to_string(), "{tree:?}");
        }
    }

    #[test]
    fn streamed_collections_match_whole_trees() {
        let item = |i: u32| Node::new("vm").attr("id", i.to_string()).with_leaf("name", format!("a&{i}"));
        for n in [0, 1, 3] {
            let mut whole = Node::collection("vms");
            for i in 0..n {
                whole.push(item(i));
            }
            assert_eq!(Node::collection_xml("vms", (0..n).map(item), 0), whole.to_xml(), "{n} items");
            let json = Node::collection_json("vm", (0..n).map(item), 0);
            assert_eq!(String::from_utf8(json).unwrap(), whole.to_json().to_string(), "{n} items");
        }
    }

    #[test]
    fn malformed_and_hostile_xml_is_refused() {
        assert!(Node::parse_xml(b"<vm><name>x</vm>").is_err());
        assert!(Node::parse_xml(b"").is_err());
        assert!(Node::parse_xml(b"<a/><b/>").is_err());
        assert!(Node::parse_xml(b"<!DOCTYPE x [<!ENTITY a 'b'>]><vm/>").is_err());
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(Node::parse_xml(deep.as_bytes()).is_err());
    }

    #[test]
    fn bodies_beyond_the_element_and_attribute_limits_are_refused() {
        let attrs = |n: usize| -> String { (0..n).map(|i| format!(" a{i}=\"\"")).collect() };
        assert!(Node::parse_xml(format!("<vm{}/>", attrs(MAX_ATTRIBUTES)).as_bytes()).is_ok());
        assert!(Node::parse_xml(format!("<vm{}/>", attrs(MAX_ATTRIBUTES + 1)).as_bytes()).is_err());
        let elements = |n: usize| format!("<vm>{}</vm>", "<t/>".repeat(n - 1));
        assert!(Node::parse_xml(elements(MAX_ELEMENTS).as_bytes()).is_ok());
        assert!(Node::parse_xml(elements(MAX_ELEMENTS + 1).as_bytes()).is_err());
        let array = |n: usize| format!("{{\"t\":[{}]}}", vec!["1"; n - 1].join(","));
        assert!(Node::parse_json(array(MAX_ELEMENTS).as_bytes(), "vm").is_ok());
        assert!(Node::parse_json(array(MAX_ELEMENTS + 1).as_bytes(), "vm").is_err());
    }

    #[test]
    fn json_bodies_become_the_same_tree() {
        let n = Node::parse_json(br#"{"name":"vm1","template":{"name":"Blank"},"memory":1024}"#, "vm").unwrap();
        assert_eq!(n.text_of("name"), Some("vm1"));
        assert_eq!(n.path("template/name").and_then(|t| t.text.as_deref()), Some("Blank"));
        assert_eq!(n.text_of("memory"), Some("1024"));
    }
}
