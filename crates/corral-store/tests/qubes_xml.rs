//! qubes.xml import and export, through a real (in-memory) store.

use corral_core::domain::{Class, Domain};
use corral_core::label::Label;
use corral_core::props::GLOBAL_PROPS;
use corral_core::volume::{Driver, NewDisk, Pool, Volume, GIB};
use corral_core::{App, HostInfo};
use corral_store::qubes_xml::{self, XmlError};
use corral_store::{SqliteStore, StateStore};

const FIXTURE: &str = include_str!("fixtures/qubes.xml");
const INVALID: &str = include_str!("fixtures/qubes-invalid.xml");
const HOST: HostInfo = HostInfo { memory_mib: 1024, cpus: 2 };
const FIREWALL_NOTE: &str = "firewall rules are kept in each qube's firewall.xml";

/// Commits a fresh install plus the import, and reads the model back as the daemon would at start.
fn import_into_fresh_store(xml: &str) -> (App, Vec<String>) {
    let imported = qubes_xml::import(xml).expect("import");
    let mut store = SqliteStore::open_in_memory().expect("open");
    store.commit(&App::initial_ops("/var/lib/qubes", "/var/lib/qubes/vm-kernels")).expect("initial ops");
    store.commit(&imported.ops).expect("imported ops");
    let (app, load_warnings) = store.load(HOST).expect("load");
    assert!(load_warnings.is_empty(), "the store rejected imported rows: {load_warnings:?}");
    (app, imported.warnings)
}

fn domain<'a>(app: &'a App, name: &str) -> &'a Domain {
    app.domain(name).unwrap_or_else(|| panic!("qube {name} missing"))
}

fn props(d: &Domain) -> Vec<(&str, &str)> {
    d.props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn features(d: &Domain) -> Vec<(&str, &str)> {
    d.features.iter().collect()
}

fn tags(d: &Domain) -> Vec<&str> {
    d.tags.iter().map(String::as_str).collect()
}

fn globals(app: &App) -> Vec<(&'static str, String)> {
    GLOBAL_PROPS.iter().filter_map(|p| app.global_explicit(p.name).map(|v| (p.name, v.to_string()))).collect()
}

fn warned(warnings: &[String], needles: &[&str]) -> bool {
    warnings.iter().any(|w| needles.iter().all(|n| w.contains(n)))
}

fn vol(name: &str, pool: &str, vid: &str, size: u64) -> Volume {
    Volume {
        name: name.into(),
        pool: pool.into(),
        vid: vid.into(),
        size,
        rw: true,
        source: None,
        save_on_stop: false,
        snap_on_start: false,
        revisions_to_keep: 0,
        ephemeral: None,
        bootable: false,
        preallocated: false,
        alias: None,
    }
}

#[test]
fn fixture_imports_into_the_expected_model() {
    let (app, warnings) = import_into_fresh_store(FIXTURE);

    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warned(&warnings, &["pool vm-pool", "lvm_thin", "skipped"]));
    assert!(warned(&warnings, &["qube sys-net", "pci device assignments"]));
    assert!(warned(&warnings, &[FIREWALL_NOTE]));

    let labels: Vec<Label> = app.labels().cloned().collect();
    assert_eq!(labels.len(), 9);
    assert_eq!(labels[8], Label { index: 9, name: "teal".into(), color: "0x00aaaa".into() });
    assert_eq!(app.label("label-9").map(|l| l.name.as_str()), Some("teal"));

    let pools: Vec<&str> = app.pools().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pools, ["varlibqubes", "linux-kernel", "bigdisk"]);
    let mut bigdisk = Pool::new("bigdisk", Driver::File, "/mnt/bigdisk/qubes");
    bigdisk.ephemeral_volatile = true;
    assert_eq!(app.pool("bigdisk"), Some(&bigdisk));

    assert_eq!(
        globals(&app),
        [
            ("check_updates_vm", "True".to_string()),
            ("clockvm", "sys-net".into()),
            ("default_dispvm", "default-dvm".into()),
            ("default_kernel", "6.6.48-1.fc37".into()),
            ("default_netvm", "sys-firewall".into()),
            ("default_pool_kernel", "linux-kernel".into()),
            ("default_qrexec_timeout", "90".into()),
            ("default_template", "fedora-40".into()),
            ("updatevm", "sys-firewall".into()),
        ]
    );

    let names: Vec<&str> = app.domains().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["dom0", "default-dvm", "fedora-40", "sys-firewall", "sys-net", "sys-usb", "work"]);

    let dom0 = domain(&app, "dom0");
    assert_eq!(dom0.qid, 0);
    assert_eq!(
        props(dom0),
        [("default_dispvm", "default-dvm"), ("keyboard_layout", "de+nodeadkeys+"), ("label", "black")]
    );
    assert_eq!(
        features(dom0),
        [("gui-default-secure-copy-sequence", "Ctrl-Shift-c"), ("config-usbvm-name", "sys-usb")]
    );
    assert_eq!(tags(dom0), ["admin-host"]);

    let fedora = domain(&app, "fedora-40");
    assert_eq!((fedora.qid, fedora.class), (1, Class::TemplateVM));
    assert_eq!(fedora.uuid.to_string(), "8a3c3d3e-6f0b-4a55-9e43-0f3c6a1b2c01");
    assert_eq!(props(fedora), [("installed_by_rpm", "True"), ("label", "black"), ("maxmem", "4000")]);
    assert_eq!(
        features(fedora),
        [
            ("qrexec", "1"),
            ("gui", "1"),
            ("os", "Linux"),
            ("template-name", "fedora-40"),
            ("template-epoch", "0"),
            ("service.cups", ""),
        ]
    );
    let mut root = vol("root", "varlibqubes", "vm-templates/fedora-40/root", 20 * GIB);
    root.save_on_stop = true;
    root.revisions_to_keep = 1;
    let mut private = vol("private", "varlibqubes", "vm-templates/fedora-40/private", 2 * GIB);
    private.save_on_stop = true;
    private.revisions_to_keep = 1;
    let mut kernel = vol("kernel", "linux-kernel", "6.6.48-1.fc37", 0);
    kernel.rw = false;
    let volatile = vol("volatile", "varlibqubes", "vm-templates/fedora-40/volatile", 10 * GIB);
    assert_eq!(fedora.volumes, [root, private, volatile, kernel]);

    // The automatic guivm-/audiovm- tags are derived here, so only the stored one remains.
    let sys_net = domain(&app, "sys-net");
    assert_eq!(tags(sys_net), ["created-by-dom0"]);
    assert_eq!(app.tags_of(sys_net), ["audiovm-dom0", "created-by-dom0", "guivm-dom0"]);
    assert_eq!(sys_net.prop("netvm"), Some(""));
    assert_eq!(sys_net.prop("virt_mode"), Some("hvm"));

    let work = domain(&app, "work");
    assert_eq!((work.qid, work.class), (5, Class::AppVM));
    assert_eq!(
        props(work),
        [
            ("default_dispvm", "default-dvm"),
            ("label", "teal"),
            ("memory", "800"),
            ("netvm", "sys-firewall"),
            ("template", "fedora-40"),
            ("vcpus", "4"),
        ]
    );
    assert_eq!(
        features(work),
        [("service.crond", "1"), ("menu-items", "org.gnome.Terminal.desktop firefox.desktop"), ("ipv6", "")]
    );
    assert_eq!(tags(work), ["created-by-dom0", "project-x"]);
    assert_eq!(app.netvm_chain(work), ["sys-firewall", "sys-net"]);
    let root = work.volume("root").expect("root");
    assert!(root.snap_on_start && !root.save_on_stop);
    assert_eq!(root.source.as_deref(), Some("vm-templates/fedora-40/root"));
    let private = work.volume("private").expect("private");
    assert_eq!((private.pool.as_str(), private.size), ("bigdisk", 50 * GIB));
    assert_eq!(work.firewall, corral_core::firewall::default_rules());

    // The file leaves this snapshot's origin out; it is found through default-dvm's root.
    let sys_usb = domain(&app, "sys-usb");
    assert_eq!(sys_usb.class, Class::DispVM);
    assert_eq!(sys_usb.prop("dispid"), Some("42"));
    assert_eq!(sys_usb.prop("auto_cleanup"), Some("False"));
    assert_eq!(sys_usb.volume("root").and_then(|v| v.source.as_deref()), Some("vm-templates/fedora-40/root"));
    assert_eq!(sys_usb.volume("private").and_then(|v| v.source.as_deref()), Some("appvms/default-dvm/private"));
    assert!(sys_usb.features.iter().next().is_none() && sys_usb.tags.is_empty());
}

#[test]
fn builtin_pools_keep_this_hosts_paths() {
    let xml = FIXTURE.replace("dir_path=\"/var/lib/qubes\"", "dir_path=\"/elsewhere/qubes\"");
    let imported = qubes_xml::import(&xml).expect("import");
    assert!(!imported.ops.iter().any(|op| matches!(op, corral_core::Op::PutPool(p) if p.name == "varlibqubes")));
    let (app, _) = import_into_fresh_store(&xml);
    assert_eq!(app.pool("varlibqubes").map(|p| p.dir_path.as_str()), Some("/var/lib/qubes"));
    assert_eq!(domain(&app, "fedora-40").volume("root").map(|v| v.pool.as_str()), Some("varlibqubes"));
}

#[test]
fn export_then_import_is_the_same_model() {
    let (app, _) = import_into_fresh_store(FIXTURE);
    let xml = qubes_xml::export(&app);
    let (again, warnings) = import_into_fresh_store(&xml);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warned(&warnings, &[FIREWALL_NOTE]));

    assert_eq!(app.labels().collect::<Vec<_>>(), again.labels().collect::<Vec<_>>());
    assert_eq!(app.pools(), again.pools());
    assert_eq!(globals(&app), globals(&again));
    assert_eq!(app.domains().collect::<Vec<_>>(), again.domains().collect::<Vec<_>>());
    assert_eq!(qubes_xml::export(&again), xml, "export is not deterministic");
}

/// A qube's further disks (`disk<N>`, added over HTTP) are volumes like the others: exported, imported, and
/// listed after the class's own volumes, by number.
#[test]
fn further_disks_survive_export_and_import_in_order() {
    let (mut app, _) = import_into_fresh_store(FIXTURE);
    let work = domain(&app, "work").clone();
    for n in [10, 2] {
        let (plan, _) = app.plan_volume_add(&work, &NewDisk::thin("varlibqubes", GIB, Some(n))).expect("plan");
        for op in plan.ops {
            app.apply(op);
        }
    }
    let xml = qubes_xml::export(&app);
    assert!(xml.contains(
        "<volume name=\"disk2\" pool=\"varlibqubes\" vid=\"appvms/work/disk2\" revisions_to_keep=\"1\" rw=\"True\" \
         save_on_stop=\"True\" snap_on_start=\"False\" size=\"1073741824\"/>"
    ));
    let (again, _) = import_into_fresh_store(&xml);
    let names: Vec<&str> = domain(&again, "work").volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["root", "private", "volatile", "kernel", "disk2", "disk10"]);
    assert_eq!(domain(&again, "work"), domain(&app, "work"));
}

/// A further disk's boot flag, full allocation and given name are Corral's own volume attributes: written when
/// set, read back.
#[test]
fn a_boot_disks_flags_survive_export_and_import() {
    let (mut app, _) = import_into_fresh_store(FIXTURE);
    let work = domain(&app, "work").clone();
    let new = NewDisk {
        bootable: true,
        preallocated: true,
        alias: Some("Data & <logs>".into()),
        ..NewDisk::thin("varlibqubes", GIB, Some(3))
    };
    let (plan, _) = app.plan_volume_add(&work, &new).expect("plan");
    for op in plan.ops {
        app.apply(op);
    }

    let xml = qubes_xml::export(&app);

    assert!(
        xml.contains("size=\"1073741824\" bootable=\"True\" preallocated=\"True\" alias=\"Data &amp; &lt;logs&gt;\"/>"),
        "{xml}"
    );
    let (again, _) = import_into_fresh_store(&xml);
    let disk = domain(&again, "work").volume("disk3").expect("disk3");
    assert!(disk.bootable && disk.preallocated);
    assert_eq!(disk.alias.as_deref(), Some("Data & <logs>"));
    assert_eq!(domain(&again, "work"), domain(&app, "work"));
}

#[test]
fn export_has_upstreams_shape() {
    let (app, _) = import_into_fresh_store(FIXTURE);
    let xml = qubes_xml::export(&app);
    assert!(xml.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<qubes>\n  <labels>\n"));
    assert!(xml.contains("<label id=\"label-9\" color=\"0x00aaaa\">teal</label>"));
    assert!(xml.contains(
        "<pool name=\"bigdisk\" dir_path=\"/mnt/bigdisk/qubes\" driver=\"file\" revisions_to_keep=\"1\" \
         ephemeral_volatile=\"True\"/>"
    ));
    assert!(
        xml.contains("<pool name=\"linux-kernel\" dir_path=\"/var/lib/qubes/vm-kernels\" driver=\"linux-kernel\"/>")
    );
    // Upstream's AdminVM refuses name/qid/uuid on load; other qubes need them.
    let dom0 = &xml[xml.find("<domain id=\"domain-0\" class=\"AdminVM\">").expect("dom0")..];
    let dom0 = &dom0[..dom0.find("</domain>").expect("end")];
    assert!(!dom0.contains("name=\"qid\"") && !dom0.contains("name=\"uuid\"") && !dom0.contains("volume-config"));
    assert!(xml.contains("<property name=\"qid\">5</property>"));
    assert!(xml.contains("<property name=\"netvm\"></property>"));
    assert!(xml.contains("<tag name=\"guivm-dom0\"/>"));
    assert!(xml.contains(
        "<volume name=\"root\" pool=\"varlibqubes\" vid=\"appvms/work/root\" revisions_to_keep=\"0\" rw=\"True\" \
         save_on_stop=\"False\" snap_on_start=\"True\" size=\"21474836480\" source=\"vm-templates/fedora-40/root\"/>"
    ));
    assert!(xml.contains("<feature name=\"ipv6\"></feature>"));
}

#[test]
fn export_escapes_text() {
    let (mut app, _) = import_into_fresh_store(FIXTURE);
    let work = domain(&app, "work").qid;
    app.apply(corral_core::Op::SetFeature { qid: work, name: "odd".into(), value: Some("a<b & \"c\" 'd'".into()) });
    app.apply(corral_core::Op::SetProp { qid: work, name: "kernelopts".into(), value: Some("x=1\r\ny=</z>".into()) });
    let xml = qubes_xml::export(&app);
    assert!(xml.contains("<feature name=\"odd\">a&lt;b &amp; &quot;c&quot; &apos;d&apos;</feature>"));
    let (again, _) = import_into_fresh_store(&xml);
    let work = domain(&again, "work");
    assert_eq!(work.features.get("odd"), Some("a<b & \"c\" 'd'"));
    assert_eq!(work.prop("kernelopts"), Some("x=1\r\ny=</z>"));
}

#[test]
fn malformed_xml_is_an_error() {
    type Expect = fn(&XmlError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("", |e| matches!(e, XmlError::NoRoot)),
        ("   <!-- nothing -->  ", |e| matches!(e, XmlError::NoRoot)),
        ("<qubes><domains></qubes>", |e| matches!(e, XmlError::Syntax { .. })),
        ("<qubes><domains>", |e| matches!(e, XmlError::Unclosed(_) | XmlError::Syntax { .. })),
        ("<qubes", |e| matches!(e, XmlError::Syntax { .. })),
        ("<qubes a=\"1\" a=\"2\"/>", |e| matches!(e, XmlError::Syntax { .. })),
        ("<qubes><labels><label id=\"label-1\">&bogus;</label></labels></qubes>", |e| {
            matches!(e, XmlError::Syntax { .. })
        }),
        ("<qubes/><qubes/>", |e| matches!(e, XmlError::TrailingContent { .. })),
        ("<qubes/>trailing", |e| matches!(e, XmlError::TrailingContent { .. })),
        ("<domains/>", |e| matches!(e, XmlError::UnexpectedRoot(r) if r == "domains")),
        (&FIXTURE[..FIXTURE.len() / 2], |e| matches!(e, XmlError::Unclosed(_) | XmlError::Syntax { .. })),
    ];
    for (xml, expected) in cases {
        match qubes_xml::import(xml) {
            Ok(_) => panic!("accepted {xml:?}"),
            Err(e) => assert!(expected(&e), "{xml:?} gave {e:?}"),
        }
    }

    let deep = format!("<qubes>{}{}</qubes>", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(qubes_xml::import(&deep), Err(XmlError::TooDeep { .. })));
}

/// Only what the fresh store has that a host may not: the installer's explicit kernel pool.
#[test]
fn an_empty_qubes_xml_only_unsets_the_installer_values() {
    let imported = qubes_xml::import("<qubes/>").expect("import");
    assert!(imported.warnings.is_empty());
    assert_eq!(imported.ops, [corral_core::Op::SetGlobalProp { name: "default_pool_kernel".into(), value: None }]);
}

#[test]
fn a_remote_vm_and_its_relay_are_imported() {
    let xml = r#"<qubes><domains>
        <domain id="domain-0" class="AdminVM"><properties><property name="label">black</property></properties></domain>
        <domain id="domain-1" class="StandaloneVM"><properties><property name="qid">1</property>
            <property name="name">relay</property><property name="label">red</property>
            <property name="uuid">5b7a1bcc-0e1d-4a8e-9d1a-7d0a9a3f0101</property></properties></domain>
        <domain id="domain-2" class="RemoteVM"><properties><property name="qid">2</property>
            <property name="name">far</property><property name="label">green</property>
            <property name="uuid">5b7a1bcc-0e1d-4a8e-9d1a-7d0a9a3f0102</property>
            <property name="relayvm">relay</property><property name="transport_rpc">qubesair.SSHProxy</property>
            </properties></domain>
    </domains></qubes>"#;
    let (app, w) = import_into_fresh_store(xml);

    assert!(w.iter().all(|w| w.contains("firewall")), "{w:?}");
    let far = domain(&app, "far");
    assert_eq!(far.class, corral_core::Class::RemoteVM);
    assert_eq!(props(far), [("label", "green"), ("relayvm", "relay"), ("transport_rpc", "qubesair.SSHProxy")]);
    assert!(far.volumes.is_empty());
}

/// A file an older Corral exported names the daemon's own features after the HTTP door; they come in under
/// today's names.
#[test]
fn features_an_older_corral_exported_get_todays_names() {
    let xml = r#"<qubes><domains>
        <domain id="domain-1" class="StandaloneVM"><properties><property name="qid">1</property>
            <property name="name">work</property><property name="label">red</property>
            <property name="uuid">5b7a1bcc-0e1d-4a8e-9d1a-7d0a9a3f0101</property></properties>
            <features><feature name="rest.cdrom">install.iso</feature><feature name="rest.network">lab</feature>
            <feature name="rest.nic-name">eth-a</feature><feature name="rest.other">1</feature></features>
        </domain>
    </domains></qubes>"#;
    let (app, _) = import_into_fresh_store(xml);

    assert_eq!(
        features(domain(&app, "work")),
        [("corral.cdrom", "install.iso"), ("corral.network", "lab"), ("corral.nic-name", "eth-a"), ("rest.other", "1")]
    );
}

#[test]
fn invalid_items_are_skipped_with_warnings() {
    let (app, w) = import_into_fresh_store(INVALID);

    // Global properties.
    assert!(warned(&w, &["global property default_netvm", "ghost"]));
    assert!(warned(&w, &["global property default_fw_netvm", "unknown"]));
    assert!(warned(&w, &["global property stats_interval", "positive"]));
    assert!(warned(&w, &["global property maxmem", "read-only"]));
    assert!(warned(&w, &["global property default_qrexec_timeout", "int"]));
    assert_eq!(globals(&app), [("default_template", "fedora".to_string())]);

    // Labels: HTML colours and upstream's old grey are accepted, a foreign label on a built-in index moves.
    assert!(warned(&w, &["label broken", "colour"]));
    assert!(warned(&w, &["label-10", "invalid name"]));
    assert!(warned(&w, &["label lime", "label-4", "label-12"]));
    assert!(!warned(&w, &["label gray"]) && !warned(&w, &["label red"]));
    let extra: Vec<(u32, &str, &str)> =
        app.labels().filter(|l| l.index > 8).map(|l| (l.index, l.name.as_str(), l.color.as_str())).collect();
    assert_eq!(extra, [(11, "custom", "0xabcdef"), (12, "lime", "0x00ff00")]);
    assert_eq!(app.label("gray").map(|l| l.color.as_str()), Some("0x555555"));

    // Pools.
    assert!(warned(&w, &["pool default", "not an absolute path"]));
    assert!(warned(&w, &["pool reflinked", "file-reflink"]));
    assert!(warned(&w, &["pool archive", "revisions_to_keep 5", "set to 1"]));
    assert!(warned(&w, &["pool odd", "ephemeral_volatile"]));
    let pools: Vec<(&str, i64)> = app.pools().iter().map(|p| (p.name.as_str(), p.revisions_to_keep)).collect();
    assert_eq!(pools, [("varlibqubes", 1), ("linux-kernel", 0), ("archive", 1)]);

    // Qubes that cannot be imported at all, including one whose template is missing, which in turn
    // invalidates a reference to it.
    assert!(warned(&w, &["qube remote", "NetVM", "not supported"]));
    assert!(warned(&w, &["qube 1bad", "invalid name"]));
    assert!(warned(&w, &["qube dupe", "already used"]));
    assert!(warned(&w, &["qube orphan", "template=\"missing\""]));
    assert!(warned(&w, &["qube orphan", "no valid template"]));
    assert!(warned(&w, &["qube client", "guivm=\"orphan\"", "that qube was skipped"]));
    assert!(warned(&w, &["qube client", "netvm=\"ghost\""]));
    assert!(warned(&w, &["qube client", "no uuid"]));
    assert!(warned(&w, &["qube client", "label \"label-9\" does not exist"]));
    let names: Vec<&str> = app.domains().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["dom0", "client", "fedora", "sys-net"]);

    // Properties, features, tags and volumes of a qube that is imported.
    let fedora = domain(&app, "fedora");
    assert!(warned(&w, &["qube fedora", "memory=\"lots\""]));
    assert!(warned(&w, &["qube fedora", "vcpus=\"-1\"", "positive"]));
    assert!(warned(&w, &["qube fedora", "mac=\"not-a-mac\""]));
    assert!(warned(&w, &["qube fedora", "unknown property frobnicate"]));
    assert!(warned(&w, &["qube fedora", "property xid is read-only"]));
    assert_eq!(props(fedora), [("kernelopts", "nopat"), ("label", "custom"), ("virt_mode", "hvm")]);
    assert!(warned(&w, &["qube fedora", "feature \"bad name\""]));
    assert_eq!(features(fedora), [("good", "yes")]);
    assert!(warned(&w, &["qube fedora", "tag \"bad tag!\""]));
    assert_eq!(tags(fedora), ["fine"]);
    assert!(warned(&w, &["qube fedora", "volume \"root\"", "pool \"reflinked\" was not imported"]));
    assert!(warned(&w, &["qube fedora", "volume \"data\""]));
    assert!(warned(&w, &["qube fedora", "volume \"volatile\"", "invalid vid"]));
    assert!(warned(&w, &["qube fedora", "volume \"kernel\"", "invalid rw"]));
    let mut private = vol("private", "varlibqubes", "vm-templates/fedora/private", 2 * GIB);
    private.save_on_stop = true;
    private.revisions_to_keep = 1;
    assert_eq!(fedora.volumes, [private]);

    let sys_net = domain(&app, "sys-net");
    assert_eq!(
        props(sys_net),
        [("label", "lime"), ("provides_network", "True"), ("virt_mode", "hvm")],
        "values are normalized like a client's Set"
    );

    let client = domain(&app, "client");
    assert_eq!(props(client), [("template", "fedora")]);
    assert!(!client.uuid.is_nil());

    assert!(warned(&w, &[FIREWALL_NOTE]));
}

#[test]
fn a_second_admin_vm_is_refused() {
    let xml = r#"<qubes><domains>
        <domain id="domain-0" class="AdminVM"><properties><property name="label">red</property></properties></domain>
        <domain id="domain-9" class="AdminVM"><properties><property name="name">dom1</property>
            <property name="qid">9</property></properties></domain>
    </domains></qubes>"#;
    let imported = qubes_xml::import(xml).expect("import");
    assert!(warned(&imported.warnings, &["qube dom1", "only one AdminVM"]));
    assert_eq!(
        imported.ops,
        [
            corral_core::Op::SetProp { qid: 0, name: "label".into(), value: Some("red".into()) },
            corral_core::Op::SetGlobalProp { name: "default_pool_kernel".into(), value: None },
        ]
    );
}

/// Two qubes naming one image would overwrite and delete each other's data: the import is refused as a
/// whole, naming both. Kernel volumes share their kernel by design.
#[test]
fn two_qubes_sharing_an_image_are_refused() {
    let shared = FIXTURE.replacen("vid=\"appvms/sys-net/private\"", "vid=\"vm-templates/fedora-40/private\"", 1);
    assert_ne!(shared, FIXTURE);

    match qubes_xml::import(&shared) {
        Err(e @ XmlError::SharedImage { .. }) => {
            let message = e.to_string();
            assert!(message.contains("fedora-40") && message.contains("sys-net"), "{message}");
            assert!(message.contains("varlibqubes:vm-templates/fedora-40/private"), "{message}");
        }
        other => panic!("accepted or wrong error: {other:?}"),
    }
    assert!(qubes_xml::import(FIXTURE).is_ok());
}
