//! The RHEV search language subset: `field OP value` terms joined by `and` (the default) or `or`, `*`
//! wildcards, `sortby FIELD [asc|desc]`, `page N`; plus the `;max=N` and case-sensitivity parameters.

use crate::ctx::Ctx;

/// Results per page of `page N`, the engine limit the RHEV guide uses.
pub const PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    cmp: Cmp,
    value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// OR of ANDs.
    any_of: Vec<Vec<Term>>,
    sortby: Option<(String, bool)>,
    page: Option<usize>,
}

fn parse_term(word: &str) -> Result<Term, String> {
    for (token, cmp) in
        [("!=", Cmp::Ne), ("<=", Cmp::Le), (">=", Cmp::Ge), ("=", Cmp::Eq), ("<", Cmp::Lt), (">", Cmp::Gt)]
    {
        if let Some((field, value)) = word.split_once(token) {
            if field.is_empty() {
                break;
            }
            if value.trim().is_empty() {
                return Err(format!("Invalid search term: {word} compares with nothing"));
            }
            return Ok(Term { field: field.trim().to_ascii_lowercase(), cmp, value: value.trim().to_string() });
        }
    }
    Err(format!("Invalid search term: {word}"))
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut q = Query::default();
        let mut current: Vec<Term> = Vec::new();
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            match w.to_ascii_lowercase().as_str() {
                "and" => {}
                "or" => q.any_of.push(std::mem::take(&mut current)),
                "sortby" => {
                    let field = words.get(i + 1).ok_or("sortby needs a field")?.to_ascii_lowercase();
                    let desc = match words.get(i + 2).map(|d| d.to_ascii_lowercase()) {
                        Some(d) if d == "desc" => {
                            i += 1;
                            true
                        }
                        Some(d) if d == "asc" => {
                            i += 1;
                            false
                        }
                        _ => false,
                    };
                    q.sortby = Some((field, desc));
                    i += 1;
                }
                "page" => {
                    let n = words.get(i + 1).and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0);
                    q.page = Some(n.ok_or("page needs a number from 1")?);
                    i += 1;
                }
                _ => current.push(parse_term(w)?),
            }
            i += 1;
        }
        if !current.is_empty() || q.any_of.is_empty() {
            q.any_of.push(current);
        }
        Ok(q)
    }

    fn term_matches(t: &Term, value: Option<String>, case_sensitive: bool) -> bool {
        let Some(value) = value else { return false };
        let (v, want) =
            if case_sensitive { (value, t.value.clone()) } else { (value.to_lowercase(), t.value.to_lowercase()) };
        // Enumerated values are written without underscores in searches (`poweringup`).
        let (v2, want2) = (v.replace('_', ""), want.replace('_', ""));
        match t.cmp {
            Cmp::Eq => glob(&want, &v) || glob(&want2, &v2),
            Cmp::Ne => !(glob(&want, &v) || glob(&want2, &v2)),
            Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge => {
                let ord = match (v.parse::<f64>(), want.parse::<f64>()) {
                    (Ok(a), Ok(b)) => a.partial_cmp(&b),
                    _ => Some(v.cmp(&want)),
                };
                matches!(
                    (t.cmp, ord),
                    (Cmp::Lt, Some(std::cmp::Ordering::Less))
                        | (Cmp::Gt, Some(std::cmp::Ordering::Greater))
                        | (Cmp::Le, Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
                        | (Cmp::Ge, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal))
                )
            }
        }
    }

    pub fn matches(&self, field: &dyn Fn(&str) -> Option<String>, case_sensitive: bool) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|t| Self::term_matches(t, field(&t.field), case_sensitive)))
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Filters, sorts, pages and caps a collection as the request's search parameters say.
pub fn apply<T>(ctx: &Ctx, items: Vec<T>, field: impl Fn(&T, &str) -> Option<String>) -> Result<Vec<T>, String> {
    let case_sensitive = ctx
        .param("case-sensitive")
        .or_else(|| ctx.param("case_sensitive"))
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let mut items = match ctx.query("search").filter(|s| !s.trim().is_empty()) {
        None => items,
        Some(text) => {
            let q = Query::parse(text)?;
            let mut kept: Vec<T> = items.into_iter().filter(|i| q.matches(&|f| field(i, f), case_sensitive)).collect();
            if let Some((key, desc)) = &q.sortby {
                kept.sort_by(|a, b| {
                    let (x, y) = (field(a, key), field(b, key));
                    let ord = match (
                        x.as_deref().and_then(|v| v.parse::<f64>().ok()),
                        y.as_deref().and_then(|v| v.parse::<f64>().ok()),
                    ) {
                        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.cmp(&y),
                    };
                    if *desc {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
            if let Some(page) = q.page {
                kept = kept.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
            }
            kept
        }
    };
    if let Some(max) = ctx.param("max") {
        let max = max.parse::<usize>().map_err(|_| format!("Invalid ;max={max}: a whole number from 0 is needed"))?;
        items.truncate(max);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("vm*", "vm1"));
        assert!(glob("v*1", "vm01"));
        assert!(!glob("vm*", "avm"));
        assert!(glob("*", ""));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn terms_sortby_and_page() {
        let q = Query::parse("name=vm* and status=up sortby name desc page 2").unwrap();
        assert_eq!(q.any_of[0].len(), 2);
        assert_eq!(q.sortby, Some(("name".into(), true)));
        assert_eq!(q.page, Some(2));
        assert!(Query::parse("page 0").is_err());
        assert!(Query::parse("=x").is_err());
        let only_page = Query::parse("page 1").unwrap();
        assert!(only_page.matches(&|_| None, true));
    }

    #[test]
    fn or_and_case() {
        let q = Query::parse("name=A or name=b").unwrap();
        let get = |v: &'static str| move |f: &str| (f == "name").then(|| v.to_string());
        assert!(q.matches(&get("b"), true));
        assert!(!q.matches(&get("a"), true));
        assert!(q.matches(&get("a"), false));
        let enum_q = Query::parse("status=poweringup").unwrap();
        assert!(enum_q.matches(&|_| Some("powering_up".into()), true));
    }
}
