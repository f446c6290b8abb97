//! Following directives into one ordered list of rules. The files come from the caller's [`PolicyFiles`], so this
//! stays free of I/O and can be tested with files in memory.

use crate::parse::{
    parse_file, parse_service_file, policy_files, BadFileName, Directive, Entry, Origin, Rule, SyntaxError,
};

/// Where included policy comes from. Paths are as the directive wrote them; resolving relative ones (upstream:
/// against the top-level policy directory) is the implementation's.
pub trait PolicyFiles {
    /// A file's name (as rules and errors will cite it) and text; `None` if there is no such file.
    fn file(&self, path: &str) -> Option<(String, String)>;
    /// The names in a directory; `None` if there is no such directory.
    fn dir(&self, path: &str) -> Option<Vec<String>>;
    /// For `!compat-4.0`: the old per-service files as (service, argument or `*`, file name, text), in the order
    /// they apply. None by default.
    fn compat40(&self) -> Vec<(String, String, String, String)> {
        Vec::new()
    }
}

/// Why a policy could not be loaded; any of these must deny every call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{origin}: no file {path:?}")]
    NotAFile { origin: Origin, path: String },
    #[error("{origin}: no directory {path:?}")]
    NotADirectory { origin: Origin, path: String },
    #[error("{origin}: {error}")]
    BadFileName { origin: Origin, error: BadFileName },
    #[error("{origin}: includes nested more than {MAX_DEPTH} deep (a loop?)")]
    TooDeep { origin: Origin },
}

/// Includes deeper than this are taken for a loop.
pub const MAX_DEPTH: usize = 32;

/// Parses `text` (the top-level file `name`) and everything it includes, in order.
pub fn load(files: &dyn PolicyFiles, name: &str, text: &str) -> Result<Vec<Rule>, LoadError> {
    let mut rules = Vec::new();
    follow(files, parse_file(name, text)?, 0, &mut rules)?;
    Ok(rules)
}

fn follow(files: &dyn PolicyFiles, entries: Vec<Entry>, depth: usize, rules: &mut Vec<Rule>) -> Result<(), LoadError> {
    for entry in entries {
        let (directive, origin) = match entry {
            Entry::Rule(rule) => {
                rules.push(rule);
                continue;
            }
            Entry::Directive { directive, origin } => (directive, origin),
        };
        if depth >= MAX_DEPTH {
            return Err(LoadError::TooDeep { origin });
        }
        let read = |path: &str| {
            files.file(path).ok_or_else(|| LoadError::NotAFile { origin: origin.clone(), path: path.to_owned() })
        };
        match directive {
            Directive::Include(path) => {
                let (name, text) = read(&path)?;
                follow(files, parse_file(&name, &text)?, depth + 1, rules)?;
            }
            Directive::IncludeDir(path) => {
                let names = files
                    .dir(&path)
                    .ok_or_else(|| LoadError::NotADirectory { origin: origin.clone(), path: path.clone() })?;
                let chosen = policy_files(names.iter().map(String::as_str))
                    .map_err(|error| LoadError::BadFileName { origin: origin.clone(), error })?;
                for file in chosen {
                    let (name, text) = read(&format!("{}/{file}", path.trim_end_matches('/')))?;
                    follow(files, parse_file(&name, &text)?, depth + 1, rules)?;
                }
            }
            Directive::IncludeService { service, argument, path } => {
                let (name, text) = read(&path)?;
                follow(files, parse_service_file(&service, &argument, &name, &text)?, depth + 1, rules)?;
            }
            Directive::Compat40 => {
                for (service, argument, name, text) in files.compat40() {
                    follow(files, parse_service_file(&service, &argument, &name, &text)?, depth + 1, rules)?;
                }
            }
        }
    }
    Ok(())
}
