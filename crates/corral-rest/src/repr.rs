//! Representations: one element tree rendered as RHEV XML or as JSON, and parsed back from request bodies.
//! JSON follows the XML tree: element names and attributes become keys, repeated elements become arrays.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};
use serde_json::{Map, Value};

/// Deeper request bodies are refused; real ones nest a handful of levels.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: Option<String>,
    pub children: Vec<Node>,
    /// Collections render as arrays in JSON even when they hold zero or one item.
    pub list: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprError(pub String);

impl Node {
    pub fn new(name: &str) -> Self {
        Node { name: name.into(), ..Node::default() }
    }

    pub fn collection(name: &str) -> Self {
        Node { name: name.into(), list: true, ..Node::default() }
    }

    pub fn leaf(name: &str, text: impl Into<String>) -> Self {
        Node { name: name.into(), text: Some(text.into()), ..Node::default() }
    }

    pub fn attr(mut self, key: &str, value: impl Into<String>) -> Self {
        self.attrs.push((key.into(), value.into()));
        self
    }

    pub fn child(mut self, node: Node) -> Self {
        self.children.push(node);
        self
    }

    pub fn with_leaf(self, name: &str, text: impl Into<String>) -> Self {
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

    /// Text at a `/`-separated path of child elements.
    pub fn path(&self, path: &str) -> Option<&Node> {
        path.split('/').try_fold(self, |node, part| node.get(part))
    }

    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 4);
        // Writing into a Vec cannot fail.
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), Some("yes"))));
        write_node(&mut w, self);
        let mut out = w.into_inner();
        out.push(b'\n');
        out
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
            map.insert(k.clone(), Value::String(v.clone()));
        }
        if let Some(t) = &self.text {
            map.insert("value".into(), Value::String(t.clone()));
        }
        let mut names: Vec<&str> = Vec::new();
        for c in &self.children {
            if !names.contains(&c.name.as_str()) {
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
        loop {
            let event = reader.read_event_into(&mut buf).map_err(|e| ReprError(format!("Malformed XML: {e}")))?;
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
                    if let Some(top) = stack.last_mut() {
                        top.text.get_or_insert_with(String::new).push_str(&text);
                    } else if !text.trim().is_empty() {
                        return Err(ReprError("Text outside the root element".into()));
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.get_or_insert_with(String::new).push_str(&String::from_utf8_lossy(&t));
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
        json_node(root, &value, 0)
    }
}

fn json_node(name: &str, value: &Value, depth: usize) -> Result<Node, ReprError> {
    if depth > MAX_DEPTH {
        return Err(ReprError("JSON nests too deeply".into()));
    }
    let mut node = Node::new(name);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        for item in items {
                            node.push(json_node(k, item, depth + 1)?);
                        }
                    }
                    Value::String(s) if matches!(k.as_str(), "id" | "href") => node.attrs.push((k.clone(), s.clone())),
                    _ => node.push(json_node(k, v, depth + 1)?),
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
    let mut node = Node::new(&String::from_utf8_lossy(e.name().as_ref()));
    for a in e.attributes() {
        let a = a.map_err(|err| ReprError(format!("Malformed XML attribute: {err}")))?;
        let value = a.unescape_value().map_err(|err| ReprError(format!("Malformed XML attribute: {err}")))?;
        node.attrs.push((String::from_utf8_lossy(a.key.as_ref()).into_owned(), value.into_owned()));
    }
    Ok(node)
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), ReprError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(ReprError("More than one root element".into())),
    }
    Ok(())
}

fn write_node(w: &mut Writer<Vec<u8>>, node: &Node) {
    let mut start = BytesStart::new(node.name.as_str());
    for (k, v) in &node.attrs {
        start.push_attribute((k.as_str(), v.as_str()));
    }
    if node.children.is_empty() && node.text.is_none() {
        let _ = w.write_event(Event::Empty(start));
        return;
    }
    let _ = w.write_event(Event::Start(start));
    if let Some(t) = &node.text {
        let _ = w.write_event(Event::Text(BytesText::new(t)));
    }
    for c in &node.children {
        write_node(w, c);
    }
    let _ = w.write_event(Event::End(BytesEnd::new(node.name.as_str())));
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
    fn json_bodies_become_the_same_tree() {
        let n = Node::parse_json(br#"{"name":"vm1","template":{"name":"Blank"},"memory":1024}"#, "vm").unwrap();
        assert_eq!(n.text_of("name"), Some("vm1"));
        assert_eq!(n.path("template/name").and_then(|t| t.text.as_deref()), Some("Blank"));
        assert_eq!(n.text_of("memory"), Some("1024"));
    }
}
