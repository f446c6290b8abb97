"""corrald's RHEV/oVirt v3 door, driven by the real oVirt v3 Python SDK as its users drive it.

run.sh starts corrald (libvirt's test driver) and passes its API URL and a user's credentials in
CORRAL_API_URL, CORRAL_API_USER and CORRAL_API_PASSWORD.

The tests run in file order and share one vm, `sdk-vm`, made from Blank: each step is its own test so
that one failing step shows as that step (a later step that needs an earlier one fails too, saying so).
"""

import base64
import os
import re
import time
import urllib.error
import urllib.request

import pytest

from ovirtsdk.api import API
from ovirtsdk.infrastructure.errors import RequestError
from ovirtsdk.xml import params

URL = os.environ["CORRAL_API_URL"]
USER = os.environ["CORRAL_API_USER"]
PASSWORD = os.environ["CORRAL_API_PASSWORD"]

VM_NAME = "sdk-vm"
MIB = 1024 * 1024
GIB = 1024 * MIB
SNAPSHOT_DESCRIPTION = "before the upgrade: été & <more>"


@pytest.fixture(scope="module")
def api():
    api = API(url=URL, username=USER, password=PASSWORD)
    yield api
    api.disconnect()


def the_vm(api):
    vm = api.vms.get(name=VM_NAME)
    assert vm is not None, "%s does not exist (an earlier step failed)" % VM_NAME
    return vm


def wait_for_state(api, wanted, timeout=30):
    """Polls the vm's status as an SDK user does; returns the last state seen."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = the_vm(api).get_status().get_state()
        if state == wanted:
            return state
        time.sleep(0.2)
    return state


def assert_version(version, what):
    """A version the SDK parsed: its numbers are integers (the SDK refuses the document otherwise)."""
    assert version is not None, "%s has no version" % what
    for part in ("major", "minor"):
        value = getattr(version, "get_" + part)()
        assert isinstance(value, int), "%s version %s is %r" % (what, part, value)


# ---------------------------------------------------------------------------------------------------------
# Connecting and reading


def test_connect_reads_the_product_version_as_integers(api):
    info = api.get_product_info()

    version = info.get_version()
    assert_version(version, "product_info")
    for part in (version.get_build(), version.get_revision()):
        assert isinstance(part, int), part
    assert info.get_full_version(), "the product's own version string"


def test_capabilities_versions_are_integers(api):
    versions = api.capabilities.list()

    assert versions, "no capability versions"
    for v in versions:
        assert_version(v, "capabilities")


def test_hosts_have_integer_versions(api):
    hosts = api.hosts.list()

    assert [h.get_name() for h in hosts] == ["localhost"]
    host = hosts[0]
    assert_version(host.get_version(), "host")
    assert isinstance(host.get_version().get_build(), int)
    assert isinstance(host.get_version().get_revision(), int)
    assert host.get_version().get_full_version(), "the host's version string"
    libvirt = host.get_libvirt_version()
    assert_version(libvirt, "libvirt")
    assert isinstance(libvirt.get_build(), int)


def test_clusters_and_datacenters_have_integer_versions(api):
    clusters = api.clusters.list()
    datacenters = api.datacenters.list()

    assert [c.get_name() for c in clusters] == ["Default"]
    assert [d.get_name() for d in datacenters] == ["Default"]
    for c in clusters:
        assert_version(c.get_version(), "cluster")
        for v in c.get_supported_versions().get_version():
            assert_version(v, "cluster supported")
    for d in datacenters:
        assert_version(d.get_version(), "datacenter")


def test_storage_domains_networks_and_templates_list(api):
    domains = [s.get_name() for s in api.storagedomains.list()]
    networks = [n.get_name() for n in api.networks.list()]
    templates = [t.get_name() for t in api.templates.list()]

    assert "varlibqubes" in domains, domains
    assert "default" in networks, networks
    assert "Blank" in templates, templates
    assert api.templates.get("Blank").get_id() == "00000000-0000-0000-0000-000000000000"


def test_vms_list(api):
    vms = api.vms.list()

    assert all(v.get_name() for v in vms)


# ---------------------------------------------------------------------------------------------------------
# A vm's life


def test_create_a_vm_from_blank(api):
    vm = api.vms.add(
        params.VM(
            name=VM_NAME,
            cluster=api.clusters.get("Default"),
            template=api.templates.get("Blank"),
            memory=512 * MIB,
        )
    )

    assert vm.get_name() == VM_NAME
    assert vm.get_memory() == 512 * MIB
    assert the_vm(api).get_status().get_state() == "down"


def test_add_a_disk(api):
    vm = the_vm(api)
    before = len(vm.disks.list())

    disk = vm.disks.add(
        params.Disk(
            name="sdk-data",
            size=GIB,
            interface="virtio",
            format="raw",
            storage_domains=params.StorageDomains(storage_domain=[api.storagedomains.get("varlibqubes")]),
        )
    )

    assert disk.get_size() == GIB or disk.get_provisioned_size() == GIB
    assert len(the_vm(api).disks.list()) == before + 1
    # The name given is kept (oVirt 3 shows it as both name and alias); the qube's volume is disk1.
    assert disk.get_name() == "sdk-data" and disk.get_alias() == "sdk-data"
    assert "sdk-data" in [d.get_alias() for d in the_vm(api).disks.list()]


def test_add_a_bootable_thin_disk_as_the_sdk_examples_do(api):
    vm = the_vm(api)

    disk = vm.disks.add(
        params.Disk(
            storage_domains=params.StorageDomains(storage_domain=[api.storagedomains.get("varlibqubes")]),
            size=GIB,
            status=None,
            interface="virtio",
            format="cow",
            sparse=True,
            bootable=True,
        )
    )

    assert disk.get_bootable() is True
    assert disk.get_sparse() is True
    # A file pool's thin disk is a sparse raw image, and the answer says so.
    assert disk.get_format() == "raw"


def test_rename_a_disk(api):
    disk = the_vm(api).disks.get(name="sdk-data")

    disk.set_alias("sdk-logs")
    renamed = disk.update()

    assert renamed.get_alias() == "sdk-logs" and renamed.get_name() == "sdk-logs"
    assert the_vm(api).disks.get(name="sdk-logs").get_id() == disk.get_id()


def test_add_a_nic(api):
    vm = the_vm(api)

    nic = vm.nics.add(params.NIC(name="eth0", network=params.Network(name="default"), interface="virtio"))

    assert nic.get_name() == "eth0"
    assert [n.get_name() for n in the_vm(api).nics.list()] == ["eth0"]


def test_rename_a_nic(api):
    nic = the_vm(api).nics.get(name="eth0")

    nic.set_name("uplink")
    renamed = nic.update()

    assert renamed.get_name() == "uplink"
    assert [(n.get_id(), n.get_name()) for n in the_vm(api).nics.list()] == [(nic.get_id(), "uplink")]


def test_start(api):
    the_vm(api).start()

    assert wait_for_state(api, "up") == "up"


def test_starting_an_up_vm_is_refused(api):
    with pytest.raises(RequestError) as refused:
        the_vm(api).start()

    assert refused.value.status in (409, 400), refused.value
    assert the_vm(api).get_status().get_state() == "up"


def test_suspend(api):
    the_vm(api).suspend()

    assert wait_for_state(api, "suspended") == "suspended"


def test_snapshot_keeps_its_description(api):
    # A snapshot is a revision of the vm's private volume: corrald takes it of a halted or suspended vm.
    vm = the_vm(api)

    snapshot = vm.snapshots.add(params.Snapshot(description=SNAPSHOT_DESCRIPTION))

    assert snapshot.get_description() == SNAPSHOT_DESCRIPTION
    listed = [s.get_description() for s in the_vm(api).snapshots.list()]
    assert listed == [SNAPSHOT_DESCRIPTION]


def test_start_after_suspend(api):
    the_vm(api).start()

    assert wait_for_state(api, "up") == "up"


def test_stop(api):
    the_vm(api).stop()

    assert wait_for_state(api, "down") == "down"


def test_every_document_parses_with_the_sdk():
    """Crawls the hrefs from /api (not the actions) and parses each XML answer with the SDK's generated
    parser, which checks every typed field (integers, booleans) the v3 schema declares. It runs while
    the vm (halted, with its snapshot) still exists, so its sub-collections are crawled too."""
    auth = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    origin = URL[: URL.index("/api")]
    seen, queue, failures = {"/api"}, ["/api"], []
    while queue and len(seen) < 1000:
        path = queue.pop(0)
        request = urllib.request.Request(origin + path, headers={"Authorization": auth, "Accept": "application/xml"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            failures.append("%s: HTTP %d" % (path, e.code))
            continue
        try:
            params.parseString(body, silence=True)
        except Exception as e:  # the SDK raises its own parse errors and lxml's
            failures.append("%s: %s" % (path, e))
        text = re.sub(rb"<actions>.*?</actions>", b"", body, flags=re.S).decode()
        for href in re.findall(r'href="([^"]+)"', text):
            href = href.replace("&amp;", "&")
            if "{" not in href and href not in seen:
                seen.add(href)
                queue.append(href)

    assert not failures, "\n".join(failures)
    assert len(seen) > 20, sorted(seen)
    assert any(p.endswith("/snapshots") for p in seen), "the vm was not crawled"


def test_delete(api):
    the_vm(api).delete()

    assert api.vms.get(name=VM_NAME) is None
