//! The firewall rule language of `admin.vm.firewall.Get`/`Set`: one rule per line, `key=value` options
//! separated by single spaces, everything after the first `comment=` being a free-form comment.
//!
//! Parsing accepts what upstream qubesd accepts and prints one canonical form, so a rule list read with
//! `Get` can be sent back with `Set` unchanged. The rule list is evaluated in order with an implicit
//! final `drop`; that policy belongs to whoever applies the rules, not to this module.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};
use crate::text::pyrepr;

const COMMENT_PREFIX: &str = "comment=";

/// Upstream stores expiry as a Python `datetime`, which cannot represent years past 9999, so any later
/// timestamp is refused there; refusing it here keeps the accepted language identical.
const MAX_EXPIRE: u64 = 253_402_300_799;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Drop,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialTarget {
    Dns,
}

impl SpecialTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialTarget::Dns => "dns",
        }
    }
}

/// Where a rule applies. Addresses are stored as networks (host bits cleared), so two spellings of the
/// same network compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    V4 { network: Ipv4Addr, prefix_len: u8 },
    V6 { network: Ipv6Addr, prefix_len: u8 },
    Host(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::V4 { network, prefix_len } => write!(f, "dst4={network}/{prefix_len}"),
            Destination::V6 { network, prefix_len } => write!(f, "dst6={network}/{prefix_len}"),
            Destination::Host(name) => write!(f, "dsthost={name}"),
        }
    }
}

/// One validated rule. Fields are private so every `Rule` in existence satisfies the language's
/// cross-field constraints (ports only with tcp/udp, ICMP type only with icmp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    action: Action,
    expire: Option<u64>,
    destination: Option<Destination>,
    proto: Option<Proto>,
    special_target: Option<SpecialTarget>,
    dst_ports: Option<(u16, u16)>,
    icmp_type: Option<u8>,
    comment: Option<String>,
}

impl Rule {
    /// Parse one rule line (without its line terminator).
    pub fn parse(line: &str) -> Result<Rule> {
        if line.trim_matches(is_py_space).is_empty() {
            return Err(Error::value("Empty firewall rule"));
        }

        // Upstream splits at the first `comment=` anywhere in the line, even inside another token.
        let (options, comment) = match line.find(COMMENT_PREFIX) {
            Some(at) => (&line[..at], &line[at + COMMENT_PREFIX.len()..]),
            None => (line, ""),
        };

        let mut builder = Builder::default();
        if !comment.is_empty() {
            if !comment.chars().all(is_comment_char) {
                return Err(invalid("comment", comment));
            }
            builder.comment = Some(comment.to_string());
        }

        // Surrounding whitespace is tolerated (it is what separates the options from `comment=`), but
        // inside, options are separated by exactly one space: an empty option is an error.
        let options = options.trim_matches(is_py_space);
        if !options.is_empty() {
            for option in options.split(' ') {
                builder.add_option(option)?;
            }
        }
        builder.finish()
    }

    /// The canonical line, without trailing newline.
    pub fn to_line(&self) -> String {
        self.to_string()
    }

    /// Whether the rule's expiry time has been reached at `now_epoch` (Unix seconds).
    pub fn is_expired(&self, now_epoch: u64) -> bool {
        self.expire.is_some_and(|t| t <= now_epoch)
    }

    pub fn expire(&self) -> Option<u64> {
        self.expire
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn destination(&self) -> Option<&Destination> {
        self.destination.as_ref()
    }

    pub fn proto(&self) -> Option<Proto> {
        self.proto
    }

    pub fn special_target(&self) -> Option<SpecialTarget> {
        self.special_target
    }

    /// Inclusive port range; a single port `N` is `(N, N)`.
    pub fn dst_ports(&self) -> Option<(u16, u16)> {
        self.dst_ports
    }

    pub fn icmp_type(&self) -> Option<u8> {
        self.icmp_type
    }

    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    fn accept_all() -> Rule {
        Rule {
            action: Action::Accept,
            expire: None,
            destination: None,
            proto: None,
            special_target: None,
            dst_ports: None,
            icmp_type: None,
            comment: None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action={}", self.action.as_str())?;
        if let Some(expire) = self.expire {
            write!(f, " expire={expire}")?;
        }
        if let Some(destination) = &self.destination {
            write!(f, " {destination}")?;
        }
        if let Some(proto) = self.proto {
            write!(f, " proto={}", proto.as_str())?;
        }
        if let Some(target) = self.special_target {
            write!(f, " specialtarget={}", target.as_str())?;
        }
        if let Some((first, last)) = self.dst_ports {
            write!(f, " dstports={first}-{last}")?;
        }
        if let Some(icmp_type) = self.icmp_type {
            write!(f, " icmptype={icmp_type}")?;
        }
        // Last, because everything after `comment=` is read back as the comment.
        if let Some(comment) = &self.comment {
            write!(f, " {COMMENT_PREFIX}{comment}")?;
        }
        Ok(())
    }
}

/// Parse an untrusted `admin.vm.firewall.Set` payload. Any invalid line rejects the whole payload;
/// rules already expired at `now_epoch` are dropped, so the result may be empty.
pub fn parse_rules(payload: &[u8], now_epoch: u64) -> Result<Vec<Rule>> {
    // The dispatcher normally refuses an empty payload before the handler runs; repeating the check here
    // keeps an empty rule list from ever being produced out of nothing.
    if payload.is_empty() {
        return Err(Error::protocol("expected payload"));
    }
    let text = std::str::from_utf8(payload)
        .ok()
        .filter(|text| text.is_ascii())
        .ok_or_else(|| Error::protocol("Rules contains non-ASCII characters"))?;
    let mut rules = Vec::new();
    for line in py_splitlines(text) {
        let rule = Rule::parse(line)?;
        if !rule.is_expired(now_epoch) {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The rule list of a newly created qube.
pub fn default_rules() -> Vec<Rule> {
    vec![Rule::accept_all()]
}

/// The `admin.vm.firewall.Get` reply: each rule not expired at `now_epoch`, newline-terminated.
pub fn format_rules(rules: &[Rule], now_epoch: u64) -> String {
    let mut out = String::new();
    for rule in rules.iter().filter(|rule| !rule.is_expired(now_epoch)) {
        out.push_str(&rule.to_line());
        out.push('\n');
    }
    out
}

#[derive(Default)]
struct Builder {
    action: Option<Action>,
    expire: Option<u64>,
    destination: Option<Destination>,
    proto: Option<Proto>,
    special_target: Option<SpecialTarget>,
    dst_ports: Option<(u16, u16)>,
    icmp_type: Option<u8>,
    comment: Option<String>,
}

impl Builder {
    fn add_option(&mut self, option: &str) -> Result<()> {
        let Some((key, value)) = option.split_once('=') else {
            return Err(Error::value(format!("Invalid firewall rule option: {}", pyrepr(option))));
        };
        let duplicate = match key {
            "action" => self.action.is_some(),
            "expire" => self.expire.is_some(),
            // `dsthost` is how Get prints a hostname, so it must be accepted back by Set.
            "dst4" | "dst6" | "dstname" | "dsthost" => {
                if self.destination.is_some() {
                    return Err(Error::value(format!(
                        "Firewall rule has more than one destination: {}",
                        pyrepr(option)
                    )));
                }
                false
            }
            "proto" => self.proto.is_some(),
            "specialtarget" => self.special_target.is_some(),
            "dstports" => self.dst_ports.is_some(),
            "icmptype" => self.icmp_type.is_some(),
            _ => return Err(Error::value(format!("Unknown firewall rule key: {}", pyrepr(key)))),
        };
        if duplicate {
            return Err(Error::value(format!("Duplicate firewall rule key: {}", pyrepr(key))));
        }
        if !value.chars().all(is_value_char) {
            return Err(Error::value(format!("Invalid characters in {key} value: {}", pyrepr(value))));
        }

        match key {
            "action" => {
                self.action = Some(match value {
                    "accept" => Action::Accept,
                    "drop" => Action::Drop,
                    _ => return Err(invalid(key, value)),
                });
            }
            "expire" => {
                let expire = parse_decimal(value).filter(|&t| t <= MAX_EXPIRE);
                self.expire = Some(expire.ok_or_else(|| invalid(key, value))?);
            }
            "proto" => {
                self.proto = Some(match value {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "icmp" => Proto::Icmp,
                    _ => return Err(invalid(key, value)),
                });
            }
            "specialtarget" => {
                self.special_target = Some(match value {
                    "dns" => SpecialTarget::Dns,
                    _ => return Err(invalid(key, value)),
                });
            }
            "dstports" => {
                self.dst_ports = Some(parse_port_range(value).ok_or_else(|| invalid(key, value))?);
            }
            "icmptype" => {
                let icmp_type =
                    Some(value).filter(|v| v.len() <= 3).and_then(parse_decimal).and_then(|t| u8::try_from(t).ok());
                self.icmp_type = Some(icmp_type.ok_or_else(|| invalid(key, value))?);
            }
            _ => self.destination = Some(parse_destination(key, value)?),
        }
        Ok(())
    }

    fn finish(self) -> Result<Rule> {
        let Some(action) = self.action else {
            return Err(Error::value("Firewall rule has no action"));
        };
        if self.dst_ports.is_some() && !matches!(self.proto, Some(Proto::Tcp | Proto::Udp)) {
            return Err(Error::value("dstports valid only for 'tcp' and 'udp' protocols"));
        }
        if self.icmp_type.is_some() && self.proto != Some(Proto::Icmp) {
            return Err(Error::value("icmptype valid only for 'icmp' protocol"));
        }
        Ok(Rule {
            action,
            expire: self.expire,
            destination: self.destination,
            proto: self.proto,
            special_target: self.special_target,
            dst_ports: self.dst_ports,
            icmp_type: self.icmp_type,
            comment: self.comment,
        })
    }
}

fn invalid(key: &str, value: &str) -> Error {
    Error::value(format!("Invalid {key} value: {}", pyrepr(value)))
}

/// The destination kind comes from the value, not the key: `dst4=example.com` is a hostname.
fn parse_destination(key: &str, value: &str) -> Result<Destination> {
    let fail = |why: &str| Error::value(format!("Invalid {key} value: {}: {why}", pyrepr(value)));

    let Some((host, prefix)) = value.split_once('/') else {
        if let Ok(addr) = value.parse::<Ipv6Addr>() {
            return Ok(Destination::V6 { network: addr, prefix_len: 128 });
        }
        if let Ok(addr) = value.parse::<Ipv4Addr>() {
            return Ok(Destination::V4 { network: addr, prefix_len: 32 });
        }
        // Anything that is not an address is a hostname candidate, so `1.2.3` is a (bogus but
        // well-formed) name, as upstream has it.
        if value.is_empty() || !value.bytes().all(is_hostname_byte) {
            return Err(fail("not an IP address nor a valid hostname"));
        }
        return Ok(Destination::Host(value.to_string()));
    };

    if prefix.contains('/') {
        return Err(fail("too many '/'"));
    }
    // Digit strings too long for u64 are far above any valid prefix length.
    let prefix_len = match parse_decimal(prefix) {
        Some(n) => n,
        None if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
        None => return Err(fail("bad prefix length")),
    };
    if let Ok(addr) = host.parse::<Ipv6Addr>() {
        let prefix_len = u8::try_from(prefix_len).ok().filter(|&n| n <= 128);
        let prefix_len = prefix_len.ok_or_else(|| fail("IPv6 prefix length must be at most 128"))?;
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
        return Ok(Destination::V6 { network: Ipv6Addr::from(u128::from(addr) & mask), prefix_len });
    }
    if let Ok(addr) = host.parse::<Ipv4Addr>() {
        let prefix_len = u8::try_from(prefix_len).ok().filter(|&n| n <= 32);
        let prefix_len = prefix_len.ok_or_else(|| fail("IPv4 prefix length must be at most 32"))?;
        // std's parser only takes dotted quads today; the explicit check keeps the documented rule
        // (no `127.1`-style shorthand) from depending on that.
        if host.bytes().filter(|&b| b == b'.').count() != 3 {
            return Err(fail("IPv4 address needs exactly 3 dots"));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
        return Ok(Destination::V4 { network: Ipv4Addr::from(u32::from(addr) & mask), prefix_len });
    }
    Err(fail("invalid IP address"))
}

fn parse_port_range(value: &str) -> Option<(u16, u16)> {
    let (first, last) = value.split_once('-').unwrap_or((value, value));
    let port = |s: &str| parse_decimal(s).and_then(|n| u16::try_from(n).ok());
    let (first, last) = (port(first)?, port(last)?);
    (first <= last).then_some((first, last))
}

/// Plain ASCII decimal only: std's integer parser would also take a leading `+`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | ';' | ',' | '.' | '/' | '_' | '[' | ']' | '-')
}

fn is_comment_char(c: char) -> bool {
    is_value_char(c) || c == ' '
}

fn is_hostname_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
}

/// ASCII whitespace as Python's `str.strip()` sees it, which is wider than Rust's.
fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f')
}

/// Python's `str.splitlines()` restricted to ASCII: besides `\n`, `\r` and `\r\n`, the vertical tab,
/// form feed and the file/group/record separators end a line; a final terminator adds no empty line.
fn py_splitlines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                lines.push(&text[start..i]);
                i += 2;
                start = i;
            }
            b'\n' | b'\r' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn canon(line: &str) -> String {
        match Rule::parse(line) {
            Ok(rule) => rule.to_line(),
            Err(e) => panic!("{line:?} rejected: {e}"),
        }
    }

    fn err(line: &str) -> String {
        match Rule::parse(line) {
            Ok(rule) => panic!("{line:?} accepted as {:?}", rule.to_line()),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Invalid(crate::error::Invalid::Value), "{line:?}: {e}");
                e.message
            }
        }
    }

    #[test]
    fn minimal_rules() {
        assert_eq!(canon("action=accept"), "action=accept");
        assert_eq!(canon("action=drop"), "action=drop");
    }

    #[test]
    fn canonical_order() {
        assert_eq!(
            canon("dstports=443 proto=tcp expire=1700000000 dst4=10.0.0.0/8 action=drop comment=web only"),
            "action=drop expire=1700000000 dst4=10.0.0.0/8 proto=tcp dstports=443-443 comment=web only"
        );
        assert_eq!(
            canon("icmptype=8 specialtarget=dns proto=icmp action=accept dstname=example.com"),
            "action=accept dsthost=example.com proto=icmp specialtarget=dns icmptype=8"
        );
    }

    #[test]
    fn canonical_lines_round_trip() {
        for line in [
            "action=accept",
            "action=drop expire=1 dst4=192.168.0.0/24 proto=udp specialtarget=dns dstports=53-53 comment=a b",
            "action=accept dst6=2001:db8::/32 proto=tcp dstports=1-65535",
            "action=accept dsthost=qubes-os.org proto=icmp icmptype=0",
            "action=drop comment= leading space and: [brackets];, ok./_-",
        ] {
            assert_eq!(canon(line), line);
            let Ok(rule) = Rule::parse(line) else { panic!("{line:?}") };
            assert_eq!(Rule::parse(&rule.to_line()), Ok(rule.clone()));
            assert_eq!(rule.to_string(), line);
        }
    }

    #[test]
    fn ipv4_destinations() {
        assert_eq!(canon("action=accept dst4=127.0.0.1"), "action=accept dst4=127.0.0.1/32");
        assert_eq!(canon("action=accept dst4=127.0.0.0/8"), "action=accept dst4=127.0.0.0/8");
        assert_eq!(canon("action=accept dst4=10.1.2.3/8"), "action=accept dst4=10.0.0.0/8");
        assert_eq!(canon("action=accept dst4=192.168.1.77/26"), "action=accept dst4=192.168.1.64/26");
        assert_eq!(canon("action=accept dst4=1.2.3.4/0"), "action=accept dst4=0.0.0.0/0");
        assert_eq!(canon("action=accept dst4=1.2.3.4/32"), "action=accept dst4=1.2.3.4/32");
        assert_eq!(canon("action=accept dst4=1.2.3.4/008"), "action=accept dst4=1.0.0.0/8");
        assert_eq!(
            Rule::parse("action=accept dst4=10.9.8.7/16").map(|r| r.destination().cloned()),
            Ok(Some(Destination::V4 { network: Ipv4Addr::new(10, 9, 0, 0), prefix_len: 16 }))
        );
    }

    #[test]
    fn ipv6_destinations() {
        assert_eq!(canon("action=accept dst6=2001:abcd:efab::3"), "action=accept dst6=2001:abcd:efab::3/128");
        assert_eq!(canon("action=accept dst6=2001:abcd:efab::/64"), "action=accept dst6=2001:abcd:efab::/64");
        assert_eq!(canon("action=accept dst6=2001:abcd:efab::3/64"), "action=accept dst6=2001:abcd:efab::/64");
        assert_eq!(canon("action=accept dst6=2001:DB8:0:0::1/128"), "action=accept dst6=2001:db8::1/128");
        assert_eq!(canon("action=accept dst6=::/0"), "action=accept dst6=::/0");
        assert_eq!(canon("action=accept dst6=ffff::1/1"), "action=accept dst6=8000::/1");
        assert_eq!(canon("action=accept dst6=::ffff:1.2.3.4"), "action=accept dst6=::ffff:1.2.3.4/128");
    }

    #[test]
    fn destination_kind_ignores_key() {
        assert_eq!(canon("action=accept dst6=1.2.3.4"), "action=accept dst4=1.2.3.4/32");
        assert_eq!(canon("action=accept dstname=1.2.3.4/24"), "action=accept dst4=1.2.3.0/24");
        assert_eq!(canon("action=accept dst4=::1"), "action=accept dst6=::1/128");
        assert_eq!(canon("action=accept dst4=example.com"), "action=accept dsthost=example.com");
        assert_eq!(canon("action=accept dsthost=example.com"), "action=accept dsthost=example.com");
        assert_eq!(canon("action=accept dstname=my_host-1.lan."), "action=accept dsthost=my_host-1.lan.");
    }

    #[test]
    fn non_addresses_fall_back_to_hostnames() {
        assert_eq!(canon("action=accept dst4=1.2.3"), "action=accept dsthost=1.2.3");
        assert_eq!(canon("action=accept dst4=1.2.3.4.5"), "action=accept dsthost=1.2.3.4.5");
        assert_eq!(canon("action=accept dst4=300.1.1.1"), "action=accept dsthost=300.1.1.1");
        assert_eq!(canon("action=accept dst4=01.2.3.4"), "action=accept dsthost=01.2.3.4");
    }

    #[test]
    fn invalid_destinations() {
        for value in [
            "Example.com",
            "https://qubes-os.org",
            "",
            "1.2.3/24",
            "127/8",
            "1.2.3.4.5/32",
            "137.327.0.0/16",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "1.2.3.4/8/8",
            "1.2.3.4/99999999999999999999999",
            "::1/129",
            "2001:abcd:efab0123::3/128",
            "2001:abcd:efab:3/128",
            "2001:abcd:efab:a:a:a:a:a:a:3/128",
            "2001:abcd:efgh::3/128",
            "example.com/24",
        ] {
            let message = err(&format!("action=accept dst4={value}"));
            assert!(message.starts_with(&format!("Invalid dst4 value: '{value}'")), "{message}");
        }
        assert_eq!(
            err("action=accept dst4=1.2.3.4/33"),
            "Invalid dst4 value: '1.2.3.4/33': IPv4 prefix length must be at most 32"
        );
        assert_eq!(err("action=accept dst6=www%20x"), "Invalid characters in dst6 value: 'www%20x'");
    }

    #[test]
    fn one_destination_at_most() {
        assert_eq!(
            err("action=accept dst4=1.2.3.4 dst6=::1"),
            "Firewall rule has more than one destination: 'dst6=::1'"
        );
        err("action=accept dstname=a.b dstname=c.d");
        err("action=accept dsthost=a.b dst4=1.2.3.4");
    }

    #[test]
    fn dstports() {
        assert_eq!(canon("action=accept proto=tcp dstports=443"), "action=accept proto=tcp dstports=443-443");
        assert_eq!(canon("action=accept proto=udp dstports=0-65535"), "action=accept proto=udp dstports=0-65535");
        assert_eq!(canon("action=accept proto=tcp dstports=0080-00090"), "action=accept proto=tcp dstports=80-90");
        assert_eq!(canon("action=accept proto=tcp dstports=22-22"), "action=accept proto=tcp dstports=22-22");
        assert_eq!(err("action=accept proto=tcp dstports=70000"), "Invalid dstports value: '70000'");
        for value in ["", "-", "100-20", "80-90-100", "abcdef", "80-", "-80", "1-1000000000000", "1000000000000"] {
            assert_eq!(
                err(&format!("action=accept proto=tcp dstports={value}")),
                format!("Invalid dstports value: '{value}'")
            );
        }
        // `+` would pass std's integer parser but is outside the value alphabet.
        assert_eq!(err("action=accept proto=tcp dstports=+80"), "Invalid characters in dstports value: '+80'");
        assert_eq!(err("action=accept proto=icmp icmptype=+1"), "Invalid characters in icmptype value: '+1'");
        assert_eq!(err("action=accept expire=+5"), "Invalid characters in expire value: '+5'");
        assert_eq!(err("action=accept dstports=80"), "dstports valid only for 'tcp' and 'udp' protocols");
        assert_eq!(err("action=accept proto=icmp dstports=80"), "dstports valid only for 'tcp' and 'udp' protocols");
        // Proto may come after the ports: the constraint is on the whole rule.
        assert_eq!(canon("action=accept dstports=80 proto=udp"), "action=accept proto=udp dstports=80-80");
    }

    #[test]
    fn icmptype() {
        assert_eq!(canon("action=accept proto=icmp icmptype=0"), "action=accept proto=icmp icmptype=0");
        assert_eq!(canon("action=accept proto=icmp icmptype=255"), "action=accept proto=icmp icmptype=255");
        assert_eq!(canon("action=accept proto=icmp icmptype=008"), "action=accept proto=icmp icmptype=8");
        for value in ["256", "0008", "", "x", "-1"] {
            assert_eq!(
                err(&format!("action=accept proto=icmp icmptype={value}")),
                format!("Invalid icmptype value: '{value}'")
            );
        }
        assert_eq!(err("action=accept icmptype=8"), "icmptype valid only for 'icmp' protocol");
        assert_eq!(err("action=accept proto=tcp icmptype=8"), "icmptype valid only for 'icmp' protocol");
    }

    #[test]
    fn choice_values() {
        assert_eq!(err("action=ACCEPT"), "Invalid action value: 'ACCEPT'");
        assert_eq!(err("action=allow"), "Invalid action value: 'allow'");
        assert_eq!(err("action="), "Invalid action value: ''");
        assert_eq!(err("action=accept proto=sctp"), "Invalid proto value: 'sctp'");
        assert_eq!(err("action=accept specialtarget=ntp"), "Invalid specialtarget value: 'ntp'");
        assert_eq!(canon("specialtarget=dns action=drop"), "action=drop specialtarget=dns");
    }

    #[test]
    fn expire() {
        let Ok(rule) = Rule::parse("action=accept expire=1700000000") else { panic!() };
        assert_eq!(rule.expire(), Some(1_700_000_000));
        assert!(!rule.is_expired(1_699_999_999));
        assert!(rule.is_expired(1_700_000_000));
        assert!(rule.is_expired(1_700_000_001));
        let Ok(forever) = Rule::parse("action=accept") else { panic!() };
        assert_eq!(forever.expire(), None);
        assert!(!forever.is_expired(u64::MAX));
        assert_eq!(canon("action=accept expire=0042"), "action=accept expire=42");
        assert_eq!(canon("action=accept expire=253402300799"), "action=accept expire=253402300799");
        for value in ["", "-1", "1.5", "abc", "253402300800", "99999999999999999999999"] {
            assert_eq!(err(&format!("action=accept expire={value}")), format!("Invalid expire value: '{value}'"));
        }
    }

    #[test]
    fn comments() {
        let Ok(rule) = Rule::parse("action=accept comment=Allow web: ports 80,443 [v2];") else { panic!() };
        assert_eq!(rule.comment(), Some("Allow web: ports 80,443 [v2];"));
        assert_eq!(rule.to_line(), "action=accept comment=Allow web: ports 80,443 [v2];");
        // `comment=` with nothing after it means no comment at all.
        assert_eq!(canon("action=accept comment="), "action=accept");
        // The comment starts at the first `comment=`, wherever it is.
        assert_eq!(canon("action=accept dstname=xcomment=foo"), "action=accept dsthost=x comment=foo");
        // A line starting with `comment=` has no options left, so it cannot carry an action.
        assert_eq!(err("comment=first action drop"), "Firewall rule has no action");
        assert_eq!(err("comment=first action=drop"), "Invalid comment value: 'first action=drop'");
        assert_eq!(err("action=accept comment=a=b"), "Invalid comment value: 'a=b'");
        assert_eq!(err("action=accept comment=hi!"), "Invalid comment value: 'hi!'");
        assert_eq!(err("action=accept comment=tab\there"), "Invalid comment value: 'tab\\there'");
        assert_eq!(err("comment=no action here"), "Firewall rule has no action");
    }

    #[test]
    fn structural_errors() {
        assert_eq!(err("action=accept foo=bar"), "Unknown firewall rule key: 'foo'");
        assert_eq!(err("action=accept =bar"), "Unknown firewall rule key: ''");
        assert_eq!(err("action=accept dst=1.2.3.4"), "Unknown firewall rule key: 'dst'");
        assert_eq!(err("action=accept action=drop"), "Duplicate firewall rule key: 'action'");
        assert_eq!(err("action=accept proto=tcp proto=tcp"), "Duplicate firewall rule key: 'proto'");
        assert_eq!(err("action=accept expire=1 expire=2"), "Duplicate firewall rule key: 'expire'");
        assert_eq!(err("proto=tcp"), "Firewall rule has no action");
        assert_eq!(err("action=accept proto"), "Invalid firewall rule option: 'proto'");
        assert_eq!(err("action=accept  proto=tcp"), "Invalid firewall rule option: ''");
        assert_eq!(err("action=accept\tproto=tcp"), "Invalid characters in action value: 'accept\\tproto=tcp'");
        assert_eq!(err("action=accept proto=tc%p"), "Invalid characters in proto value: 'tc%p'");
        assert_eq!(err("action=accept=x"), "Invalid characters in action value: 'accept=x'");
        assert_eq!(err(""), "Empty firewall rule");
        assert_eq!(err("  \t"), "Empty firewall rule");
        assert_eq!(err("action=accépt"), "Invalid characters in action value: 'accépt'");
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        assert_eq!(canon("  action=accept proto=tcp \t"), "action=accept proto=tcp");
        assert_eq!(canon("action=accept\n"), "action=accept");
        assert_eq!(canon("action=accept comment=x "), "action=accept comment=x ");
    }

    #[test]
    fn accessors() {
        let Ok(rule) = Rule::parse("action=drop dst6=fe80::1/10 proto=udp dstports=53 specialtarget=dns") else {
            panic!()
        };
        assert_eq!(rule.action(), Action::Drop);
        assert_eq!(rule.proto(), Some(Proto::Udp));
        assert_eq!(rule.dst_ports(), Some((53, 53)));
        assert_eq!(rule.icmp_type(), None);
        assert_eq!(rule.special_target(), Some(SpecialTarget::Dns));
        assert_eq!(rule.comment(), None);
        assert_eq!(
            rule.destination(),
            Some(&Destination::V6 { network: "fe80::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED), prefix_len: 10 })
        );
        assert_eq!(Rule::parse("action=accept dst4=10.0.0.1/8"), Rule::parse("action=accept dst4=10.200.0.0/8"));
    }

    #[test]
    fn parse_rules_payloads() {
        let Ok(rules) = parse_rules(b"action=accept proto=tcp dstports=443\naction=drop\n", 0) else { panic!() };
        assert_eq!(format_rules(&rules, 0), "action=accept proto=tcp dstports=443-443\naction=drop\n");
        assert_eq!(parse_rules(b"action=drop", 0).map(|r| r.len()), Ok(1));
        assert_eq!(parse_rules(b"action=accept\r\naction=drop\raction=drop\x0b", 0).map(|r| r.len()), Ok(3));

        let e = parse_rules("action=accept comment=caf\u{e9}\n".as_bytes(), 0);
        assert_eq!(e, Err(Error::protocol("Rules contains non-ASCII characters")));
        assert_eq!(parse_rules(b"action=accept\xff\n", 0), Err(Error::protocol("Rules contains non-ASCII characters")));
        assert_eq!(parse_rules(b"", 0), Err(Error::protocol("expected payload")));

        for payload in [&b"\n"[..], b"action=accept\n\n", b"\naction=accept", b"action=accept\n\naction=drop\n"] {
            assert_eq!(parse_rules(payload, 0), Err(Error::value("Empty firewall rule")), "{payload:?}");
        }
        // One bad line rejects the whole list.
        assert_eq!(
            parse_rules(b"action=accept\naction=accept bogus=1\n", 0),
            Err(Error::value("Unknown firewall rule key: 'bogus'"))
        );
    }

    #[test]
    fn parse_rules_drops_expired() {
        let payload = b"action=accept expire=100 comment=old\naction=accept expire=300\naction=drop\n";
        let Ok(rules) = parse_rules(payload, 200) else { panic!() };
        assert_eq!(format_rules(&rules, 200), "action=accept expire=300\naction=drop\n");
        assert_eq!(parse_rules(b"action=accept expire=100\n", 100), Ok(vec![]));
        // Syntax is still checked on rules that would be dropped.
        assert!(parse_rules(b"action=accept expire=100 proto=xyz\n", 200).is_err());
    }

    #[test]
    fn format_hides_expired() {
        let Ok(rules) = parse_rules(b"action=accept expire=500\naction=drop\n", 0) else { panic!() };
        assert_eq!(format_rules(&rules, 499), "action=accept expire=500\naction=drop\n");
        assert_eq!(format_rules(&rules, 500), "action=drop\n");
        assert_eq!(format_rules(&[], 0), "");
    }

    #[test]
    fn defaults() {
        let rules = default_rules();
        assert_eq!(format_rules(&rules, u64::MAX), "action=accept\n");
        assert_eq!(Rule::parse("action=accept").map(|r| vec![r]), Ok(rules));
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines("a\nb\n"), ["a", "b"]);
        assert_eq!(py_splitlines("a\r\nb"), ["a", "b"]);
        assert_eq!(py_splitlines("a\r\rb"), ["a", "", "b"]);
        assert_eq!(py_splitlines("a\x0cb\x1cc\x1dd\x1ee"), ["a", "b", "c", "d", "e"]);
        assert_eq!(py_splitlines("\n"), [""]);
        assert_eq!(py_splitlines("a\x1fb"), ["a\x1fb"]);
        assert!(py_splitlines("").is_empty());
    }
}
