//! Events as `admin.Events` streams them: a subject (a qube, or none for global events), a name, and
//! keyword arguments already rendered as text.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `None` for events of the whole system (the wire shows an empty subject).
    pub subject: Option<String>,
    pub name: String,
    pub kwargs: Vec<(String, String)>,
    /// The tag a client put on the request that caused the event (RHEV's `Correlation-Id`); the Admin
    /// API's event stream does not carry it.
    pub correlation_id: Option<std::sync::Arc<str>>,
}

impl Event {
    pub fn global(name: impl Into<String>) -> Self {
        Event { subject: None, name: name.into(), kwargs: Vec::new(), correlation_id: None }
    }

    pub fn on(vm: &str, name: impl Into<String>) -> Self {
        Event { subject: Some(vm.to_string()), name: name.into(), kwargs: Vec::new(), correlation_id: None }
    }

    pub fn arg(mut self, key: &str, value: impl Into<String>) -> Self {
        self.kwargs.push((key.to_string(), value.into()));
        self
    }

    /// Upstream renders a missing value (Python `None`) as the text `None`.
    pub fn opt_arg(self, key: &str, value: Option<&str>) -> Self {
        self.arg(key, value.unwrap_or("None"))
    }
}
