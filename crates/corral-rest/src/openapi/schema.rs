//! The representations the handlers answer with and accept, as OpenAPI schemas and reusable responses.
//!
//! A RHEV representation is one element tree (`crate::repr::Node`) rendered as XML, or as its JSON twin
//! (attributes and child elements become keys, leaves become strings, repeated elements arrays, and the
//! root element's name is dropped). The trees are built by hand in the handlers, so a schema here lists
//! the key fields of one — what a client finds by name — rather than every element; none is `required`,
//! as request bodies carry only what they set. Each `Name` is both a schema and a response component
//! (`#/components/responses/Name`: the representation as `application/xml` or `application/json`).

use std::borrow::Cow;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::xml::XmlBuilder;
use utoipa::openapi::{Components, Ref, RefOr};
use utoipa::{PartialSchema, ToResponse, ToSchema};

/// One field of a representation.
enum Field {
    /// An XML attribute; a key in JSON.
    Attr(&'static str, &'static str),
    /// A text element; a string in JSON.
    Leaf(&'static str, &'static str),
    /// A child element described by the named schema.
    Elem(&'static str, &'static str, &'static str),
    /// A child element with structure of its own, described in words.
    Obj(&'static str, &'static str),
    /// Repeated child elements of the named schema; an array in JSON.
    Many(&'static str, &'static str, &'static str),
}

use Field::{Attr, Elem, Leaf, Many, Obj};

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description))
}

fn element(name: &str, description: &str, fields: &[Field]) -> Schema {
    let mut object = ObjectBuilder::new().schema_type(Type::Object).description(Some(description));
    // A reference's element is named after what it points at, so it has no name of its own.
    if !name.is_empty() {
        object = object.xml(Some(XmlBuilder::new().name(Some(name.to_string())).build()));
    }
    for field in fields {
        object = match *field {
            Attr(key, d) => object.property(key, text(d).xml(Some(XmlBuilder::new().attribute(Some(true)).build()))),
            Leaf(key, d) => object.property(key, text(d)),
            Elem(key, schema, d) => {
                let mut r = Ref::from_schema_name(schema);
                r.description = d.to_string();
                object.property(key, r)
            }
            Obj(key, d) => object.property(key, ObjectBuilder::new().schema_type(Type::Object).description(Some(d))),
            Many(key, schema, d) => object.property(
                key,
                ArrayBuilder::new()
                    .description(Some(d))
                    .items(Ref::from_schema_name(schema))
                    .xml(Some(XmlBuilder::new().name(Some(key.to_string())).build())),
            ),
        };
    }
    object.build().into()
}

/// A response whose body is the named schema in one of `content_types`.
pub(crate) fn response(description: &str, schema: Option<&str>, content_types: &[&str]) -> Response {
    let mut r = ResponseBuilder::new().description(description);
    for ct in content_types {
        r = r.content(*ct, ContentBuilder::new().schema(schema.map(Ref::from_schema_name)).build());
    }
    r.build()
}

/// RHEV representations come as XML unless the client's `Accept` asks for JSON only.
pub(crate) const XML_OR_JSON: [&str; 2] = ["application/xml", "application/json"];

/// Declares representations: each a unit type that is a schema and a response, and `register` to put
/// them all in a document's components.
macro_rules! representations {
    ($($ty:ident = $element:literal, $what:literal [$($field:expr),* $(,)?];)*) => {
        $(
            #[doc = $what]
            pub struct $ty;

            impl $ty {
                fn build() -> Schema {
                    element($element, $what, &[$($field),*])
                }
            }

            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    Self::build().into()
                }
            }

            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($ty))
                }
            }

            impl<'r> ToResponse<'r> for $ty {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($ty), response($what, Some(stringify!($ty)), &XML_OR_JSON).into())
                }
            }
        )*

        /// Every representation as a schema and as a response component.
        pub(crate) fn register(components: &mut Components) {
            $(
                components.schemas.insert(stringify!($ty).to_string(), $ty::build().into());
                let (name, r) = <$ty as ToResponse>::response();
                components.responses.insert(name.to_string(), r);
            )*
        }
    };
}

const ID: Field = Attr("id", "The object's id (a GUID)");
const HREF: Field = Attr("href", "The object's address");
const LINKS: Field = Many("link", "Link", "Sub-collections and searches (`rel`, `href`)");
const ACTIONS: Field = Obj("actions", "`<link rel href>` per action that can be POSTed to the object");
const STATUS: Field = Elem("status", "Status", "The object's state");

representations! {
    Link = "link", "A link to a related address" [Attr("href", "Address"), Attr("rel", "Relation")];
    Reference = "", "A reference to another object (the element is named after its kind: `vm`, `host`, ...)" [ID, HREF];
    Status = "status", "A state" [Leaf("state", "The state's name")];
    Fault = "fault", "Why a request failed" [
        Leaf("reason", "`Operation Failed` or `Unauthorized`"),
        Leaf("detail", "What went wrong, in brackets"),
    ];
    Api = "api", "The entry point: links to every collection, the product and a summary" [
        LINKS,
        Obj("special_objects", "Links to the Blank template and the root tag"),
        Obj(
            "product_info",
            "`name`, `vendor`, `version` (integer `major`, `minor`, `build`, `revision` attributes: the engine level \
             spoken; `full_version`: Corral's own version) and `full_version`",
        ),
        Obj("summary", "`vms`, `hosts`, `users`, `storage_domains`, each with `total` and `active`"),
        Leaf("time", "The engine's time (xsd:dateTime)"),
    ];
    Vm = "vm", "A qube as a RHEV vm" [
        ID, HREF, ACTIONS,
        Leaf("name", "The qube's name (required for add; fixed afterwards)"),
        Leaf("description", "The qube's notes"),
        Leaf("type", "`server`"),
        STATUS,
        Leaf("memory", "Memory in bytes"),
        Obj("cpu", "`<topology sockets cores threads/>`: their product is the vcpu count"),
        Obj("os", "`type` and `<boot dev/>`; `<kernel>` and `<cmdline>` when the qube boots a kernel"),
        Elem("template", "Reference", "The template (by `id`, or `<name>` on add; `Blank` makes a StandaloneVM)"),
        Elem("cluster", "Reference", "The `Default` cluster (required for add)"),
        Elem("host", "Reference", "The host, while the vm runs"),
        Leaf("start_time", "When it last started (xsd:dateTime)"),
        Leaf("label", "Add only: the qube's label (default `red`)"),
        LINKS,
    ];
    Vms = "vms", "A collection of vms" [Many("vm", "Vm", "The vms")];
    Action = "action", "An action's parameters (request) or its outcome (response)" [
        ID, HREF, STATUS,
        Leaf("force", "Delete: `true` stops a running vm first"),
        Leaf("pause", "Start: `true` pauses the vm once it runs"),
        Obj("vm", "Start: run once with `<os><kernel/><cmdline/></os>`"),
        Obj("ticket", "Ticket: `<value>` (given or made up, answered) and `<expiry>` in minutes"),
        Leaf("fence_type", "Host fence: `manual` or `status`"),
        Obj("power_management", "Host fence `status`: `<status><state/></status>`"),
        Leaf("detach", "Disk delete: `true` asks to detach instead"),
        LINKS,
    ];
    Creation = "creation", "The state of a creation (creations complete before the create answers)" [ID, HREF, STATUS];
    Statistic = "statistic", "One measurement" [
        ID, HREF,
        Leaf("name", "E.g. `memory.used`, `cpu.current.total`"),
        Leaf("description", "What it measures"),
        Obj("values", "`<value><datum/></value>`; the `type` attribute is INTEGER or DECIMAL"),
        Leaf("type", "`GAUGE`"),
        Leaf("unit", "`BYTES`, `PERCENT` or `NONE`"),
        Elem("vm", "Reference", "The vm measured"),
        Elem("host", "Reference", "The host measured"),
    ];
    Statistics = "statistics", "A collection of statistics" [Many("statistic", "Statistic", "The statistics")];
    Disk = "disk", "A volume of a qube (root, private, volatile or a further disk `disk<N>`) as a disk" [
        ID, HREF,
        Leaf("name", "`<qube>-<volume>` (fixed)"),
        Leaf("alias", "Same as the name (fixed)"),
        Leaf("description", "Which volume of which qube"),
        Leaf("size", "Size in bytes"),
        Leaf("provisioned_size", "Size in bytes; a larger one in a PUT grows the volume"),
        Leaf("actual_size", "Bytes in use"),
        Leaf("format", "The image's format: `cow` (snapshot on start) or `raw`; a new disk asked as `cow` is a sparse raw \
            image and shows `raw`"),
        Leaf("sparse", "`false` when every block of the image is allocated (a disk added with `sparse` false)"),
        Leaf("interface", "`virtio` (fixed)"),
        Leaf("bootable", "The disk the qube boots from when it has no kernel: a further disk chosen so, else the root \
            volume; at most one"),
        Leaf("read_only", "Whether the qube cannot write it"),
        STATUS,
        Elem("vm", "Reference", "The qube the volume belongs to"),
        Obj("storage_domains", "`<storage_domain id/>`: the pool holding it"),
    ];
    Disks = "disks", "A collection of disks" [Many("disk", "Disk", "The disks")];
    Nic = "nic", "A qube's one network card, present while it has a netvm" [
        ID, HREF,
        Leaf("name", "`nic1` (fixed)"),
        Leaf("interface", "`virtio` (fixed)"),
        Obj("mac", "`address` attribute: the qube's `mac` property"),
        Elem("network", "Reference", "The libvirt network `default`"),
        Elem("vm", "Reference", "The owner (a `template` under /templates)"),
        Leaf("plugged", "`true`"),
        Leaf("linked", "`true`"),
    ];
    Nics = "nics", "A collection of nics" [Many("nic", "Nic", "The nics")];
    Cdrom = "cdrom", "A qube's one cdrom (id: the zero GUID)" [
        ID, HREF,
        Obj("file", "`id` attribute: the name of a file a storage domain offers; empty when none"),
        Elem("vm", "Reference", "The owner (a `template` under /templates)"),
    ];
    Cdroms = "cdroms", "A collection of cdroms" [Many("cdrom", "Cdrom", "The cdroms")];
    Snapshot = "snapshot", "A revision of the qube's private volume" [
        ID, HREF, ACTIONS,
        Leaf("description", "The description given on add (up to 4000 characters), else the revision's id"),
        Leaf("type", "`regular`"),
        Leaf("date", "When it was taken (xsd:dateTime)"),
        Leaf("snapshot_status", "`ok`"),
        Elem("vm", "Reference", "The qube"),
    ];
    Snapshots = "snapshots", "A collection of snapshots" [Many("snapshot", "Snapshot", "The snapshots")];
    Tag = "tag", "A Qubes tag; every tag's parent is the root tag" [
        ID, HREF,
        Leaf("name", "The tag (required for add)"),
        Leaf("description", "Same as the name (fixed)"),
        Obj("parent", "`<tag id/>`: the root tag (the only parent allowed)"),
        Elem("vm", "Reference", "Under a vm: the vm"),
    ];
    Tags = "tags", "A collection of tags" [Many("tag", "Tag", "The tags")];
    Template = "template", "Blank (the zero GUID) or a TemplateVM" [
        ID, HREF,
        Leaf("name", "The TemplateVM's name (required for add; fixed afterwards)"),
        Leaf("description", "Its notes"),
        STATUS,
        Leaf("memory", "Memory in bytes"),
        Obj("cpu", "`<topology sockets cores threads/>`"),
        Obj("os", "`<kernel>` and `<cmdline>`"),
        Elem("cluster", "Reference", "The `Default` cluster"),
        Elem("vm", "Reference", "Add only: the vm to copy (by `id` or `<name>`)"),
        LINKS,
    ];
    Templates = "templates", "A collection of templates" [Many("template", "Template", "The templates")];
    StorageDomain = "storage_domain", "A storage pool as a storage domain" [
        ID, HREF,
        Leaf("name", "The pool's name (required for add; fixed)"),
        Leaf("description", "The pool driver"),
        Leaf("type", "`data` (a file pool) or `iso` (the linux-kernel pool); required for add"),
        Leaf("master", "Whether it is the global `default_pool`"),
        Obj("storage", "`<type>localfs</type>` and `<path>`: both required for add"),
        Leaf("available", "Bytes free on its file system"),
        Leaf("used", "Bytes used on its file system"),
        Leaf("committed", "Bytes provisioned to its volumes"),
        STATUS,
        Elem("host", "Reference", "The host (add: it must be this one)"),
        LINKS,
    ];
    StorageDomains = "storage_domains", "A collection of storage domains" [
        Many("storage_domain", "StorageDomain", "The storage domains"),
    ];
    File = "file", "A file a storage domain offers (a kernel of the linux-kernel pool)" [
        Attr("id", "The file's name"), HREF,
        Leaf("name", "The file's name"),
        Leaf("type", "`kernel` or `iso`"),
        Elem("storage_domain", "Reference", "Where it is"),
    ];
    Files = "files", "A collection of files" [Many("file", "File", "The files")];
    Host = "host", "The machine this daemon runs on" [
        ID, HREF, ACTIONS,
        Leaf("name", "`localhost`"),
        Leaf("address", "The machine's hostname"),
        STATUS,
        Elem("cluster", "Reference", "The `Default` cluster"),
        Obj("cpu", "`<name>`, `<speed>` (MHz) and `<topology sockets cores threads/>`"),
        Leaf("memory", "Memory in bytes"),
        Obj("summary", "`active`, `migrating` and `total` vms"),
        Obj("version", "The daemon's version"),
        Obj("libvirt_version", "libvirt's version, when connected"),
        LINKS,
    ];
    Hosts = "hosts", "A collection of hosts" [Many("host", "Host", "The hosts")];
    DataCenter = "data_center", "The `Default` data center" [
        ID, HREF,
        Leaf("name", "`Default`"),
        Leaf("storage_type", "`localfs`"),
        STATUS,
        Obj("version", "`major` and `minor` attributes"),
    ];
    DataCenters = "data_centers", "A collection of data centers" [
        Many("data_center", "DataCenter", "The data centers"),
    ];
    Cluster = "cluster", "The `Default` cluster" [
        ID, HREF,
        Leaf("name", "`Default`"),
        Obj("cpu", "`id` attribute: the CPU model"),
        Elem("data_center", "Reference", "The `Default` data center"),
        Obj("version", "`major` and `minor` attributes"),
        LINKS,
    ];
    Clusters = "clusters", "A collection of clusters" [Many("cluster", "Cluster", "The clusters")];
    Network = "network", "A libvirt network of the daemon's connection" [
        ID, HREF,
        Leaf("name", "The libvirt network's name"),
        STATUS,
        Elem("data_center", "Reference", "The `Default` data center"),
        Elem("cluster", "Reference", "Under a cluster: the cluster"),
    ];
    Networks = "networks", "A collection of networks" [Many("network", "Network", "The networks")];
    CapabilityVersion = "version", "What this engine supports at its compatibility level (3.3)" [
        ID, HREF,
        Attr("major", "`3`"),
        Attr("minor", "`3`"),
        Leaf("current", "`true`"),
        Obj("features", "`<feature><name/><description/></feature>` per feature"),
        Obj("vm_states", "One `<vm_state>` per state; the other enumerations follow the same pattern"),
    ];
    Capabilities = "capabilities", "The capabilities per compatibility level" [
        Many("version", "CapabilityVersion", "The one version this engine speaks"),
    ];
    Event = "event", "An entry of the daemon's event log" [
        Attr("id", "The event's number (increasing)"), HREF,
        Leaf("description", "What happened"),
        Leaf("code", "RHEV's event code"),
        Leaf("severity", "`normal`, `warning`, `error` or `alert`"),
        Leaf("time", "When (xsd:dateTime)"),
        Leaf("origin", "`corral`"),
        Elem("vm", "Reference", "The vm it is about"),
        Elem("host", "Reference", "The host, for starts"),
    ];
    Events = "events", "A collection of events, newest first" [Many("event", "Event", "The events")];
    User = "user", "A local user of the HTTP door" [
        Attr("id", "The user's UUID"), HREF,
        Leaf("name", "The login name"),
        Leaf("user_name", "`name@domain`, as logins are written"),
        Elem("domain", "Reference", "The authentication domain (`internal`)"),
    ];
    Users = "users", "The local users (added with `corral user add`)" [Many("user", "User", "The users")];
}

/// One entry of a virthttp envelope's `errors`.
#[derive(ToSchema)]
pub struct EnvelopeError {
    /// virthttp's error code (e.g. 100: bad object identifier, 101: invalid search key).
    pub code: i32,
    /// The code's message, or why it happened.
    pub message: String,
}

/// virthttp's answer to every well-formed request, errors included: HTTP 200 with this envelope.
#[derive(ToSchema)]
pub struct Envelope {
    /// One result per object acted on: a domain's `{name, uuid, id, status, os, ram, ram_max, cpu}`, a
    /// network's `{name, uuid, active, autostart, persistent}`, a query's answer, `{"created": true}`, ...
    pub results: Vec<serde_json::Value>,
    /// Whether no error was reported.
    pub success: bool,
    /// What went wrong.
    pub errors: Vec<EnvelopeError>,
    /// `{name: message}` objects: what was done, or why something is unsupported.
    pub messages: Vec<serde_json::Value>,
}

/// The envelope as a response.
impl<'r> ToResponse<'r> for Envelope {
    fn response() -> (&'r str, RefOr<Response>) {
        ("Envelope", response("virthttp's envelope (errors included)", Some("Envelope"), &["application/json"]).into())
    }
}

/// This OpenAPI document.
pub struct Document;

impl PartialSchema for Document {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).description(Some("An OpenAPI 3.1 document")).build().into()
    }
}

impl ToSchema for Document {}
