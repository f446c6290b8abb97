//! Domain XML from a `DomainSpec`, written with a real XML writer so names and paths are escaped.

use std::io::Cursor;

use corral_core::hv::{BootDevice, DomainSpec, GraphicsSpec, NetworkDef, NetworkSpec};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

type W = Writer<Cursor<Vec<u8>>>;

fn open(w: &mut W, name: &str, attrs: &[(&str, &str)]) {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, *v));
    }
    // Writing into a Vec cannot fail.
    let _ = w.write_event(Event::Start(e));
}

fn close(w: &mut W, name: &str) {
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

fn empty(w: &mut W, name: &str, attrs: &[(&str, &str)]) {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, *v));
    }
    let _ = w.write_event(Event::Empty(e));
}

fn text(w: &mut W, name: &str, attrs: &[(&str, &str)], value: &str) {
    open(w, name, attrs);
    let _ = w.write_event(Event::Text(BytesText::new(value)));
    close(w, name);
}

/// The libvirt definition of a qube. Reboot and crash end the domain: the daemon, not libvirt, decides
/// what runs, and a halted qube is simply not defined as running.
/// The cdrom drive: IDE, which every machine type QEMU starts by default has, read-only; without `iso`
/// it is empty (the form a media change takes to eject).
fn cdrom(w: &mut W, iso: Option<&str>, boot: Option<u32>) {
    open(w, "disk", &[("type", "file"), ("device", "cdrom")]);
    empty(w, "driver", &[("name", "qemu"), ("type", "raw")]);
    if let Some(iso) = iso {
        empty(w, "source", &[("file", iso)]);
    }
    empty(w, "target", &[("dev", CDROM_TARGET), ("bus", "ide")]);
    boot_order(w, boot);
    empty(w, "readonly", &[]);
    close(w, "disk");
}

fn boot_order(w: &mut W, order: Option<u32>) {
    if let Some(order) = order {
        empty(w, "boot", &[("order", &order.to_string())]);
    }
}

/// libvirt's per-device boot orders, which a chosen boot disk needs: `<os><boot dev='hd'>` boots the first disk
/// the firmware finds (the root volume), and libvirt refuses `<os><boot>` beside per-device orders. An asked
/// order (run once) is translated device kind by device kind, the disk kind meaning the chosen disk.
#[derive(Default)]
struct BootOrders {
    disk: Option<(usize, u32)>,
    cdrom: Option<u32>,
    network: Option<u32>,
}

fn boot_orders(spec: &DomainSpec) -> Option<BootOrders> {
    if spec.kernel.is_some() {
        return None;
    }
    let disk = spec.disks.iter().position(|d| d.bootable)?;
    if spec.boot.is_empty() {
        return Some(BootOrders { disk: Some((disk, 1)), ..BootOrders::default() });
    }
    let mut orders = BootOrders::default();
    for (n, dev) in (1..).zip(&spec.boot) {
        match dev {
            BootDevice::Disk => _ = orders.disk.get_or_insert((disk, n)),
            BootDevice::Cdrom => _ = orders.cdrom.get_or_insert(n),
            BootDevice::Network => _ = orders.network.get_or_insert(n),
        }
    }
    Some(orders)
}

const CDROM_TARGET: &str = "hdc";

/// The `<disk>` of a media change: the same drive with `iso`, or empty.
pub fn cdrom_xml(iso: Option<&str>) -> String {
    let mut w = Writer::new(Cursor::new(Vec::new()));
    cdrom(&mut w, iso, None);
    String::from_utf8_lossy(&w.into_inner().into_inner()).into_owned()
}

/// A time long past: a password valid until then is expired from the start.
const EXPIRED: u64 = 0;

/// The VNC server. libvirt picks a free port; `passwd` and `passwdValidTo` are what QEMU checks a client's
/// password against (libvirt shows them only in the secure XML).
fn graphics(w: &mut W, listen: &str, password: &str, valid_to: u64) {
    let valid_to = corral_core::text::iso_utc(valid_to);
    let attrs =
        [("type", "vnc"), ("autoport", "yes"), ("listen", listen), ("passwd", password), ("passwdValidTo", &valid_to)];
    // No password at all is how a definition without secrets (libvirt's non-secure XML) shows it.
    let attrs: Vec<_> = attrs.into_iter().filter(|(k, v)| *k != "passwd" || !v.is_empty()).collect();
    open(w, "graphics", &attrs);
    empty(w, "listen", &[("type", "address"), ("address", listen)]);
    close(w, "graphics");
}

/// VNC authentication keys DES with the first 8 characters of a password and clients send no more; libvirt
/// refuses longer ones.
const VNC_PASSWORD_CHARS: usize = 8;

/// The `<graphics>` of a console password change: the live server's own `listen` (libvirt refuses a change of
/// address) with the new password and its expiry (seconds since the epoch).
pub fn graphics_password_xml(listen: &str, password: &str, valid_to: u64) -> String {
    let password: String = password.chars().take(VNC_PASSWORD_CHARS).collect();
    let mut w = Writer::new(Cursor::new(Vec::new()));
    graphics(&mut w, listen, &password, valid_to);
    String::from_utf8_lossy(&w.into_inner().into_inner()).into_owned()
}

/// The server as a domain is defined: locked until a ticket sets a password.
fn locked_graphics(w: &mut W, g: &GraphicsSpec) {
    graphics(w, &g.listen.to_string(), &g.locked_password, EXPIRED);
}

/// A qube's one network card: virtio, on a libvirt network.
fn interface(w: &mut W, net: &NetworkSpec, boot: Option<u32>) {
    open(w, "interface", &[("type", "network")]);
    empty(w, "mac", &[("address", &net.mac)]);
    empty(w, "source", &[("network", &net.network)]);
    empty(w, "model", &[("type", "virtio")]);
    boot_order(w, boot);
    close(w, "interface");
}

/// The `<interface>` a hot-plug attaches or detaches: the same card a start defines.
pub fn interface_xml(net: &NetworkSpec) -> String {
    let mut w = Writer::new(Cursor::new(Vec::new()));
    interface(&mut w, net, None);
    String::from_utf8_lossy(&w.into_inner().into_inner()).into_owned()
}

/// libvirt's XML of a new isolated network: a bridge libvirt names, no forwarding.
pub fn network_xml(def: &NetworkDef) -> String {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    open(&mut w, "network", &[]);
    text(&mut w, "name", &[], &def.name);
    empty(&mut w, "bridge", &[("stp", if def.stp { "on" } else { "off" })]);
    if let Some(mtu) = def.mtu {
        empty(&mut w, "mtu", &[("size", &mtu.to_string())]);
    }
    if let Some((address, netmask)) = def.address {
        empty(&mut w, "ip", &[("address", &address.to_string()), ("netmask", &netmask.to_string())]);
    }
    close(&mut w, "network");
    String::from_utf8_lossy(&w.into_inner().into_inner()).into_owned()
}

pub fn domain_xml(spec: &DomainSpec) -> String {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)));
    open(&mut w, "domain", &[("type", &spec.domain_type)]);
    text(&mut w, "name", &[], &spec.name);
    text(&mut w, "uuid", &[], &spec.uuid.to_string());
    let max = spec.max_memory_mib.max(spec.memory_mib).to_string();
    text(&mut w, "memory", &[("unit", "MiB")], &max);
    text(&mut w, "currentMemory", &[("unit", "MiB")], &spec.memory_mib.to_string());
    text(&mut w, "vcpu", &[("placement", "static")], &spec.vcpus.to_string());

    let orders = boot_orders(spec);
    open(&mut w, "os", &[]);
    text(&mut w, "type", &[("arch", "x86_64")], "hvm");
    if let Some(kernel) = &spec.kernel {
        text(&mut w, "kernel", &[], kernel);
        if let Some(initrd) = &spec.initrd {
            text(&mut w, "initrd", &[], initrd);
        }
        text(&mut w, "cmdline", &[], &spec.kernel_cmdline);
    } else if orders.is_some() {
    } else if spec.boot.is_empty() {
        empty(&mut w, "boot", &[("dev", "hd")]);
    } else {
        for dev in &spec.boot {
            empty(&mut w, "boot", &[("dev", dev.libvirt_name())]);
        }
    }
    close(&mut w, "os");

    open(&mut w, "features", &[]);
    empty(&mut w, "acpi", &[]);
    empty(&mut w, "apic", &[]);
    close(&mut w, "features");
    text(&mut w, "on_poweroff", &[], "destroy");
    text(&mut w, "on_reboot", &[], "destroy");
    text(&mut w, "on_crash", &[], "destroy");

    open(&mut w, "devices", &[]);
    for (i, disk) in spec.disks.iter().enumerate() {
        open(&mut w, "disk", &[("type", "file"), ("device", "disk")]);
        empty(&mut w, "driver", &[("name", "qemu"), ("type", &disk.format)]);
        empty(&mut w, "source", &[("file", &disk.path)]);
        empty(&mut w, "target", &[("dev", &disk.target), ("bus", "virtio")]);
        boot_order(&mut w, orders.as_ref().and_then(|o| o.disk.filter(|(d, _)| *d == i)).map(|(_, n)| n));
        if disk.read_only {
            empty(&mut w, "readonly", &[]);
        }
        close(&mut w, "disk");
    }
    if let Some(iso) = &spec.cdrom {
        cdrom(&mut w, Some(iso), orders.as_ref().and_then(|o| o.cdrom));
    }
    if let Some(net) = &spec.network {
        interface(&mut w, net, orders.as_ref().and_then(|o| o.network));
    }
    open(&mut w, "serial", &[("type", "pty")]);
    if let Some(log) = &spec.console_log {
        empty(&mut w, "log", &[("file", log), ("append", "off")]);
    }
    empty(&mut w, "target", &[("port", "0")]);
    close(&mut w, "serial");
    open(&mut w, "console", &[("type", "pty")]);
    empty(&mut w, "target", &[("type", "serial"), ("port", "0")]);
    close(&mut w, "console");
    if let Some(g) = &spec.graphics {
        locked_graphics(&mut w, g);
    }
    close(&mut w, "devices");
    close(&mut w, "domain");
    String::from_utf8_lossy(&w.into_inner().into_inner()).into_owned()
}

#[cfg(test)]
mod tests {
    use corral_core::hv::{DiskSpec, NetworkSpec};

    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "work".into(),
            uuid: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            domain_type: "qemu".into(),
            memory_mib: 400,
            max_memory_mib: 0,
            vcpus: 2,
            virt_mode: "pvh".into(),
            kernel: Some("/var/lib/corral/vm-kernels/6.1/vmlinuz".into()),
            initrd: Some("/var/lib/corral/vm-kernels/6.1/initramfs".into()),
            kernel_cmdline: "console=ttyS0 root=/dev/vda".into(),
            disks: vec![
                DiskSpec {
                    target: "vda".into(),
                    path: "/p/root.qcow2".into(),
                    format: "qcow2".into(),
                    read_only: false,
                    bootable: false,
                },
                DiskSpec {
                    target: "vdd".into(),
                    path: "/p/k.img".into(),
                    format: "raw".into(),
                    read_only: true,
                    bootable: false,
                },
            ],
            network: Some(NetworkSpec { mac: "00:16:3e:5e:6c:00".into(), network: "default".into() }),
            console_log: Some("/var/log/corral/work.console".into()),
            cdrom: None,
            boot: Vec::new(),
            graphics: Some(GraphicsSpec { listen: "127.0.0.1".parse().expect("ip"), locked_password: "s3cr&t".into() }),
        }
    }

    #[test]
    fn an_isolated_network_has_its_bridge_mtu_and_address() {
        let def = NetworkDef {
            name: "lab<1>".into(),
            stp: true,
            mtu: Some(9000),
            address: Some(("10.9.0.1".parse().expect("ip"), "255.255.255.0".parse().expect("mask"))),
        };

        insta::assert_snapshot!(network_xml(&def));
    }

    #[test]
    fn without_a_kernel_the_boot_order_is_the_asked_one() {
        let mut s = spec();
        s.kernel = None;
        s.boot = vec![BootDevice::Cdrom, BootDevice::Disk];

        let xml = domain_xml(&s);

        assert!(xml.contains("<boot dev=\"cdrom\"/>\n    <boot dev=\"hd\"/>"), "{xml}");
    }

    /// A chosen boot disk boots by its own boot order, with no `<os><boot dev>` (libvirt refuses both); an asked
    /// order becomes per-device orders, `hd` meaning that disk; with a kernel it is an ordinary disk.
    #[test]
    fn without_a_kernel_the_boot_disk_has_the_first_boot_order() {
        let mut s = spec();
        s.kernel = None;
        s.initrd = None;
        s.disks.push(DiskSpec {
            target: "vde".into(),
            path: "/p/disk1.img".into(),
            format: "raw".into(),
            read_only: false,
            bootable: true,
        });

        insta::assert_snapshot!(domain_xml(&s));
        s.boot = vec![BootDevice::Cdrom, BootDevice::Network, BootDevice::Disk];
        s.cdrom = Some("/i/install.iso".into());
        let once = domain_xml(&s);
        assert!(!once.contains("<boot dev"), "{once}");
        assert!(once.contains("<target dev=\"hdc\" bus=\"ide\"/>\n      <boot order=\"1\"/>"), "{once}");
        assert!(once.contains("<model type=\"virtio\"/>\n      <boot order=\"2\"/>"), "{once}");
        assert!(once.contains("<target dev=\"vde\" bus=\"virtio\"/>\n      <boot order=\"3\"/>"), "{once}");
        assert_eq!(once.matches("<boot ").count(), 3, "{once}");
        // Without a chosen disk an asked order stays libvirt's os/boot list.
        s.disks[2].bootable = false;
        let plain = domain_xml(&s);
        assert!(plain.contains("<boot dev=\"cdrom\"/>") && !plain.contains("order"), "{plain}");
        s.boot.clear();
        s.kernel = Some("/k".into());
        assert!(!domain_xml(&s).contains("<boot"));
    }

    #[test]
    fn a_cdrom_is_a_read_only_ide_drive_and_a_media_change_names_the_same_drive() {
        let mut s = spec();
        s.cdrom = Some("/var/lib/corral/install.iso".into());

        insta::assert_snapshot!(domain_xml(&s));
        assert_eq!(
            cdrom_xml(None),
            "<disk type=\"file\" device=\"cdrom\"><driver name=\"qemu\" type=\"raw\"/>\
             <target dev=\"hdc\" bus=\"ide\"/><readonly/></disk>"
        );
        assert!(cdrom_xml(Some("/i/a&b.iso")).contains("<source file=\"/i/a&amp;b.iso\"/>"));
    }

    #[test]
    fn a_hot_plugged_card_is_the_one_a_start_defines() {
        let net = NetworkSpec { mac: "00:16:3e:01:02:03".into(), network: "lab&1".into() };
        let mut s = spec();
        s.network = Some(net.clone());

        let card = interface_xml(&net);

        assert_eq!(
            card,
            "<interface type=\"network\"><mac address=\"00:16:3e:01:02:03\"/><source network=\"lab&amp;1\"/>\
             <model type=\"virtio\"/></interface>"
        );
        assert!(domain_xml(&s).contains("<source network=\"lab&amp;1\"/>"), "{}", domain_xml(&s));
    }

    #[test]
    fn appvm_with_kernel_disks_and_network() {
        insta::assert_snapshot!(domain_xml(&spec()));
    }

    #[test]
    fn without_kernel_boots_from_disk_and_without_netvm_has_no_interface() {
        let mut s = spec();
        s.kernel = None;
        s.initrd = None;
        s.network = None;
        s.console_log = None;
        s.graphics = None;
        insta::assert_snapshot!(domain_xml(&s));
    }

    #[test]
    fn a_ticket_sets_at_most_8_characters_on_the_same_listen_address_until_its_expiry() {
        assert_eq!(
            graphics_password_xml("::1", "abcdefgh1234", 1_795_662_245),
            "<graphics type=\"vnc\" autoport=\"yes\" listen=\"::1\" passwd=\"abcdefgh\" \
             passwdValidTo=\"2026-11-26T03:04:05\"><listen type=\"address\" address=\"::1\"/></graphics>"
        );
        assert!(graphics_password_xml("127.0.0.1", "<&'\">", 0).contains("passwd=\"&lt;&amp;&apos;&quot;&gt;\""));
    }

    #[test]
    fn names_and_paths_are_escaped() {
        let mut s = spec();
        s.kernel_cmdline = "a=<b> & c='d'".into();
        let xml = domain_xml(&s);
        assert!(xml.contains("a=&lt;b&gt; &amp; c=&apos;d&apos;") || xml.contains("a=&lt;b&gt; &amp; c='d'"), "{xml}");
    }
}
