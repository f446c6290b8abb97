//! The request target as virthttp reads it: non-empty path segments, query parameters (the first of a
//! repeated one wins), its boolean rule, and comma-separated libvirt flag names.

use super::json::Json;
use crate::ctx::percent_decode;

#[derive(Debug, Clone, Default)]
pub struct Target {
    pub parts: Vec<String>,
    query: Vec<(String, String)>,
}

impl Target {
    /// `path_and_query` is the raw target, e.g. `/libvirt/domains?active=1&state=running,paused`.
    pub fn parse(path_and_query: &str) -> Target {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        // `+` is a space only in a query; a path keeps it.
        let parts = path.split('/').filter(|p| !p.is_empty()).map(|p| percent_decode(&p.replace('+', "%2B"))).collect();
        let query = query
            .split(['&', ';'])
            .filter(|p| !p.is_empty() && !p.starts_with('='))
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Target { parts, query }
    }

    pub fn part(&self, i: usize) -> Option<&str> {
        self.parts.get(i).map(String::as_str)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// virthttp's boolean: present-but-empty, `1`, `yes`, `true` are true; `0`, `no`, `false` are false;
    /// anything else (or absence) is no answer.
    pub fn flag_bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            "" | "1" | "yes" | "true" => Some(true),
            "0" | "no" | "false" => Some(false),
            _ => None,
        }
    }
}

/// A libvirt flag enumeration: the name at index `i` is the bit `1 << i`, which is how libvirt numbers
/// every enumeration virthttp exposes.
pub struct Flags(pub &'static [&'static str]);

/// `virConnectListAllDomainsFlags`.
pub const LIST_DOMAINS: Flags = Flags(&[
    "active",
    "inactive",
    "persistent",
    "transient",
    "running",
    "paused",
    "shutoff",
    "other",
    "managed_save",
    "no_managed_save",
    "autostart",
    "no_autostart",
    "has_snapshot",
    "no_snapshot",
]);
/// `virDomainCreateFlags`.
pub const CREATE: Flags = Flags(&["paused", "autodestroy", "bypass_cache", "force_boot", "validate"]);
/// `virDomainShutdownFlagValues` (reboot takes the same set).
pub const SHUTDOWN: Flags = Flags(&["acpi_power_btn", "guest_agent", "initctl", "signal", "paravirt"]);
/// `virDomainDestroyFlagsValues`.
pub const DESTROY: Flags = Flags(&["graceful"]);
/// `virDomainXMLFlags`.
pub const DOMAIN_XML: Flags = Flags(&["secure", "inactive", "update_cpu", "migratable"]);
/// `virDomainUndefineFlagsValues`.
pub const UNDEFINE: Flags = Flags(&["managed_save", "snapshots_metadata", "nvram", "keep_nvram"]);
/// `virNetworkXMLFlags`: only `inactive` exists.
pub const NETWORK_XML: Flags = Flags(&["inactive"]);

impl Flags {
    pub fn bit(&self, name: &str) -> u32 {
        self.0.iter().position(|n| *n == name).map_or(0, |i| 1 << i)
    }

    /// One flag name. virthttp's names are lowercase; any case is accepted.
    fn one(&self, name: &str) -> Option<u32> {
        let name = name.trim().to_ascii_lowercase();
        self.0.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    /// A comma-separated set of names, OR-ed; `None` when one of them does not exist. No names is 0.
    pub fn parse_csv(&self, csv: Option<&str>) -> Option<u32> {
        csv.unwrap_or_default().split(',').filter(|t| !t.is_empty()).try_fold(0, |acc, t| Some(acc | self.one(t)?))
    }

    /// A `type` member of a power action: one name or an array of names, OR-ed. `None`: not a flag.
    pub fn parse_json(&self, value: &Json) -> Option<u32> {
        match value {
            Json::Str(s) => self.one(s),
            Json::Arr(items) => items.iter().try_fold(0, |acc, item| Some(acc | self.one(item.as_str()?)?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_skip_empty_ones_and_are_decoded() {
        let t = Target::parse("/libvirt//domains/by-name/a%2Db/");

        assert_eq!(t.parts, vec!["libvirt", "domains", "by-name", "a-b"]);
    }

    #[test]
    fn the_first_of_a_repeated_parameter_wins() {
        let t = Target::parse("/libvirt/domains?active=0&active=1");

        assert_eq!(t.flag_bool("active"), Some(false));
    }

    #[test]
    fn booleans_follow_virthttp() {
        let t = Target::parse("/x?a&b=yes&c=no&d=maybe");

        assert_eq!(
            [t.flag_bool("a"), t.flag_bool("b"), t.flag_bool("c"), t.flag_bool("d"), t.flag_bool("e")],
            [Some(true), Some(true), Some(false), None, None]
        );
    }

    #[test]
    fn csv_flags_are_or_ed_in_any_case() {
        assert_eq!(LIST_DOMAINS.parse_csv(Some("running,Paused")), Some(16 | 32));
    }

    #[test]
    fn an_unknown_flag_spoils_the_set() {
        assert_eq!(LIST_DOMAINS.parse_csv(Some("running,sleeping")), None);
    }

    #[test]
    fn json_flags_take_a_name_or_an_array_of_names() {
        assert_eq!(SHUTDOWN.parse_json(&Json::Str("ACPI_POWER_BTN".into())), Some(1));
        assert_eq!(
            CREATE.parse_json(&Json::Arr(vec![Json::Str("paused".into()), Json::Str("validate".into())])),
            Some(17)
        );
        assert_eq!(CREATE.parse_json(&Json::UInt(1)), None);
    }
}
