//! Events as `admin.Events` streams them: a subject (a qube, or none for global events), a name, and
//! keyword arguments already rendered as text.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `None` for events of the whole system (the wire shows an empty subject).
    pub subject: Option<String>,
    pub name: String,
    pub kwargs: Vec<(String, String)>,
    /// The request that caused the event, when a door says so; the Admin API's event stream does not
    /// carry it.
    pub cause: Option<std::sync::Arc<Cause>>,
}

/// Who caused an event, through which request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause {
    /// The client's tag for the request (RHEV's `Correlation-Id`).
    pub correlation_id: Option<String>,
    /// Who made the request, once the door knows.
    pub principal: Option<crate::Principal>,
}

impl Event {
    pub fn global(name: impl Into<String>) -> Self {
        Event { subject: None, name: name.into(), kwargs: Vec::new(), cause: None }
    }

    pub fn on(vm: &str, name: impl Into<String>) -> Self {
        Event { subject: Some(vm.to_string()), name: name.into(), kwargs: Vec::new(), cause: None }
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
