//! Tag operations that span every qube: a tag removed from, or renamed on, every qube that has it, in one
//! transaction. (A tag is a word on a qube; these are what a tag as an object of its own amounts to.)

use corral_core::error::Missing;
use corral_core::plan::Plan;
use corral_core::{Error, ErrorKind, Result};

use crate::{Principal, Service};

impl Service {
    /// The qubes that carry `tag` themselves (not through a property), by name.
    fn tag_holders(&self, tag: &str) -> Result<Vec<String>> {
        let app = self.current();
        let mut holders = Vec::new();
        for d in app.domains() {
            if d.tags.contains(tag) {
                holders.push(d.name.clone());
            } else if app.tags_of(d).iter().any(|t| t == tag) {
                // Removing it elsewhere would leave the tag alive on this qube: refuse the whole request.
                return Err(Error::denied(format!("Tag {tag} follows a property of {} and cannot be removed", d.name)));
            }
        }
        Ok(holders)
    }

    /// Removes `tag` from every qube in one transaction, each removal authorized as `admin.vm.tag.Remove`.
    /// Returns how many qubes had it; none is `QubesTagNotFoundError`.
    pub(crate) fn tag_remove_everywhere(&self, caller: &Principal, tag: &str) -> Result<usize> {
        corral_core::text::validate_tag(tag)?;
        let holders = self.tag_holders(tag)?;
        if holders.is_empty() {
            return Err(Error::new(ErrorKind::NotFound(Missing::Tag), format!("No qube has the tag {tag}")));
        }
        for vm in &holders {
            self.auth(caller, "admin.vm.tag.Remove", tag, vm)?;
        }
        self.mutate(|app| {
            let mut plan = Plan::default();
            for vm in &holders {
                // A qube removed or untagged since the check is simply skipped.
                let Some(d) = app.domain(vm).filter(|d| d.tags.contains(tag)) else { continue };
                merge(&mut plan, app.plan_tag_remove(d, tag, caller.may_mark_creators())?);
            }
            Ok((plan, holders.len()))
        })
    }

    /// Renames `old` to `new` on every qube that has it, in one transaction (remove + set per qube).
    pub(crate) fn tag_rename(&self, caller: &Principal, old: &str, new: &str) -> Result<()> {
        corral_core::text::validate_tag(old)?;
        corral_core::text::validate_tag(new)?;
        let holders = self.tag_holders(old)?;
        if holders.is_empty() {
            return Err(Error::new(ErrorKind::NotFound(Missing::Tag), format!("No qube has the tag {old}")));
        }
        for vm in &holders {
            self.auth(caller, "admin.vm.tag.Remove", old, vm)?;
            self.auth(caller, "admin.vm.tag.Set", new, vm)?;
        }
        self.mutate(|app| {
            let mut plan = Plan::default();
            for vm in &holders {
                let Some(d) = app.domain(vm).filter(|d| d.tags.contains(old)) else { continue };
                merge(&mut plan, app.plan_tag_remove(d, old, caller.may_mark_creators())?);
                merge(&mut plan, app.plan_tag_set(d, new, caller.may_mark_creators())?);
            }
            Ok((plan, ()))
        })
    }
}

fn merge(into: &mut Plan, plan: Plan) {
    into.ops.extend(plan.ops);
    into.events.extend(plan.events);
}
