"""Black-box tests: the real upstream ``qubesadmin`` client and its ``qvm-*``
tools against a running corrald.

Run through ``run.sh`` (it unpacks the client, builds the venv, starts the
daemon).  Environment used here:

* ``CORRAL_ADMIN_SOCKET``    admin socket of the daemon under test (required;
  every test is skipped without it or without an importable ``qubesadmin``)
* ``CORRAL_INTERNAL_SOCKET`` internal socket (only the volume-import shim uses
  it; this client version has no ``QUBESD_INTERNAL_SOCKET`` setting: its
  ``qubesadmin.config`` only knows ``QUBESD_SOCKET``, ``QREXEC_CLIENT``,
  ``QREXEC_CLIENT_VM``, ``QUBESD_RECONNECT_DELAY``, ``QREXEC_SERVICES_DIR``)
* ``CORRAL_QREXEC_SERVICES_DIR`` optional dir with corral's own executable
  ``admin.vm.volume.Import`` / ``admin.vm.volume.ImportWithSize`` services

Every tool invocation gets a fresh ``QubesLocal`` object: the tools mutate the
app (``qvm-ls`` and ``qvm-prefs`` set ``app.cache_enabled = True``), so reusing
one would serve stale cached properties.

Exit codes of the tools (from the client source): ``parser.error`` -> 2
(usage errors, unknown qube, client-side validation), ``error_runtime`` -> 1
(daemon returned a QubesException).  Daemon replies of type ``ProtocolError``
or ``PermissionDenied`` are *not* QubesException subclasses in the client, so
most tools let them escape as exceptions; ``Tools.fails`` accepts both.
"""

import importlib
import os
import re
import socket
import sys
import time
import uuid

import pytest

ADMIN_SOCKET = os.environ.get("CORRAL_ADMIN_SOCKET")
INTERNAL_SOCKET = os.environ.get("CORRAL_INTERNAL_SOCKET")

try:
    import qubesadmin
    import qubesadmin.app
    import qubesadmin.config
    import qubesadmin.exc
    HAVE_CLIENT = True
except ImportError:  # collected without run.sh: every test skips
    HAVE_CLIENT = False

if HAVE_CLIENT and ADMIN_SOCKET:
    qubesadmin.config.QUBESD_SOCKET = ADMIN_SOCKET
    # QubesLocal reads the reply with no timeout: a daemon that never closes
    # the connection would hang the run instead of failing one test.
    socket.setdefaulttimeout(float(os.environ.get("CORRAL_CALL_TIMEOUT", "60")))

GiB = 1024 ** 3
MiB = 1024 ** 2
DOM0_UUID = "00000000-0000-0000-0000-000000000000"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}$")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _need_daemon():
    if not HAVE_CLIENT:
        pytest.skip("qubesadmin not importable (run through run.sh)")
    if not ADMIN_SOCKET:
        pytest.skip("CORRAL_ADMIN_SOCKET not set (run through run.sh)")


def fresh_app():
    """A new client application object talking to the daemon socket."""
    return qubesadmin.app.QubesLocal()


def client_errors():
    """Exceptions a daemon error may surface as, when a tool does not catch
    it (ProtocolError is an AssertionError, PermissionDenied an Exception)."""
    return (qubesadmin.exc.QubesException, qubesadmin.exc.ProtocolError,
            qubesadmin.exc.PermissionDenied)


def new_name(prefix):
    """Unique, valid qube/pool name (<= 31 chars, starts with a letter)."""
    return "{}-{}".format(prefix, uuid.uuid4().hex[:8])


class Result:
    def __init__(self, argv, rc, out, err, exc=None):
        self.argv, self.rc, self.out, self.err, self.exc = \
            argv, rc, out, err, exc

    @property
    def lines(self):
        return self.out.splitlines()

    def __repr__(self):
        return "Result(argv={!r}, rc={!r}, exc={!r},\n--stdout--\n{}" \
               "--stderr--\n{})".format(self.argv, self.rc, self.exc,
                                        self.out, self.err)


class Tools:
    """Call ``qubesadmin.tools.<tool>.main(args, app=QubesLocal())``."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, tool, *args, allow_exc=False):
        mod = importlib.import_module(
            "qubesadmin.tools." + tool.replace("-", "_"))
        argv = [str(a) for a in args]
        self.capsys.readouterr()
        rc, exc = None, None
        try:
            rc = mod.main(argv, app=fresh_app())
        except SystemExit as e:
            rc = e.code
        except client_errors() as e:  # pylint: disable=catching-non-exception
            if not allow_exc:
                raise
            exc = e
        out, err = self.capsys.readouterr()
        if exc is None:
            if rc is None:
                rc = 0
            elif not isinstance(rc, int):
                rc = 1
        return Result([tool] + argv, rc, out, err, exc)

    def ok(self, tool, *args):
        res = self(tool, *args)
        assert res.rc == 0, res
        return res.out

    def fails(self, tool, *args):
        res = self(tool, *args, allow_exc=True)
        assert res.exc is not None or res.rc != 0, res
        return res


@pytest.fixture
def tools(capsys):
    return Tools(capsys)


@pytest.fixture
def cleanup():
    """List of qube names to remove (in reverse order) after the test."""
    names = []
    yield names
    for name in reversed(names):
        try:
            app = fresh_app()
            if name in app.domains:
                del app.domains[name]
        except Exception:  # pylint: disable=broad-except
            pass


@pytest.fixture
def make_vm(tools, cleanup):
    """Create a qube with qvm-create; returns its name."""
    def make(prefix, *args):
        name = new_name(prefix)
        cleanup.append(name)
        tools.ok("qvm-create", name, *args)
        return name
    return make


@pytest.fixture
def template(make_vm):
    return make_vm("tpl", "--class", "TemplateVM", "--label", "black")


@pytest.fixture
def appvm(make_vm, template):
    return make_vm("app", "-t", template, "-l", "red")


def prefs_get(tools, vm, prop):
    return tools.ok("qvm-prefs", vm, prop).rstrip("\n")


def raw_ls(tools, *args):
    """qvm-ls --raw-data output as {name: [fields...]}."""
    out = tools.ok("qvm-ls", "--raw-data", *args)
    return {line.split("|")[0]: line.split("|") for line in out.splitlines()}


def table_rows(out):
    """Split a print_table() (column -t) output into whitespace-split rows."""
    return [line.split() for line in out.splitlines() if line.strip()]


def kv_table(out):
    """Two-column print_table() output as dict (second column may be
    empty)."""
    result = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        parts = line.split(None, 1)
        result[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return result


def volume_info(tools, vmvol):
    """`qvm-volume info vm:vol` key/value table (stops at the revisions
    footer)."""
    out = tools.ok("qvm-volume", "info", vmvol)
    table = out.split("List of available revisions")[0]
    return kv_table(table), out


def firewall_raw(tools, vm):
    return tools.ok("qvm-firewall", "--raw", vm, "list").splitlines()


def rule_tokens(rule):
    """Firewall rule line -> frozenset of key=value tokens (comment kept
    whole)."""
    opts, _, comment = rule.partition("comment=")
    tokens = set(opts.split())
    if comment:
        tokens.add("comment=" + comment)
    return frozenset(tokens)


class _OsProxy:
    """Stand-in for the ``os`` module inside ``qubesadmin.app`` only (to
    override getuid there without touching the real module)."""

    def __init__(self, **overrides):
        self._overrides = overrides

    def __getattr__(self, name):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(os, name)


# ---------------------------------------------------------------------------
# raw protocol / library sanity
# ---------------------------------------------------------------------------

def test_vm_list_raw(make_vm):
    # a name that sorts before "dom0": qubesd still lists dom0 first
    make_vm("aaa", "--class", "StandaloneVM", "-l", "red")
    out = fresh_app().qubesd_call("dom0", "admin.vm.List").decode()
    assert out.endswith("\n")
    lines = out.splitlines()
    assert lines[0] == "dom0 class=AdminVM state=Running uuid=" + DOM0_UUID
    assert lines[1:] == sorted(lines[1:])


def test_labels():
    app = fresh_app()
    assert list(app.labels) == ["red", "orange", "yellow", "green", "gray",
                                "blue", "purple", "black"]
    assert app.get_label("red").color == "0xcc0000"
    assert app.get_label("black").index == 8
    assert app.get_label("3").name == "yellow"


# ---------------------------------------------------------------------------
# qvm-create
# ---------------------------------------------------------------------------

def test_create_template(tools, cleanup):
    name = new_name("tpl")
    cleanup.append(name)
    res = tools("qvm-create", "--class", "TemplateVM", name, "--label", "black")
    assert res.rc == 0, res
    vm = fresh_app().domains[name]
    assert vm.klass == "TemplateVM"
    assert str(vm.label) == "black"
    assert prefs_get(tools, name, "klass") == "TemplateVM"
    assert prefs_get(tools, name, "label") == "black"


def test_create_appvm(tools, template, cleanup):
    name = new_name("app")
    cleanup.append(name)
    tools.ok("qvm-create", "-t", template, "-l", "red", name)
    vm = fresh_app().domains[name]
    assert vm.klass == "AppVM"
    assert prefs_get(tools, name, "template") == template
    assert prefs_get(tools, name, "label") == "red"


def test_create_standalone(tools, cleanup):
    name = new_name("sa")
    cleanup.append(name)
    tools.ok("qvm-create", "--class", "StandaloneVM", "--label", "green", name)
    assert fresh_app().domains[name].klass == "StandaloneVM"
    info, _ = volume_info(tools, name + ":root")
    assert info["snap_on_start"] == "False"
    assert info["save_on_stop"] == "True"


def test_create_standalone_flag(tools, cleanup):
    name = new_name("sa")
    cleanup.append(name)
    tools.ok("qvm-create", "--standalone", "-l", "blue", name)
    assert prefs_get(tools, name, "klass") == "StandaloneVM"


def test_create_with_property(tools, template, cleanup):
    name = new_name("app")
    cleanup.append(name)
    tools.ok("qvm-create", "-t", template, "-l", "red",
             "--property", "memory=600", name)
    assert prefs_get(tools, name, "memory") == "600"


def test_create_help_classes(tools):
    classes = tools.ok("qvm-create", "--help-classes").split()
    for cls in ("AppVM", "TemplateVM", "StandaloneVM", "AdminVM", "DispVM"):
        assert cls in classes


def test_create_duplicate_name(tools, template, cleanup):
    name = new_name("app")
    cleanup.append(name)
    tools.ok("qvm-create", "-t", template, "-l", "red", name)
    res = tools("qvm-create", "-t", template, "-l", "blue", name)
    assert res.rc == 1, res
    res = tools("qvm-create", "--class", "TemplateVM", "-l", "blue", name)
    assert res.rc == 1, res
    # the original is untouched
    assert prefs_get(tools, name, "label") == "red"
    assert prefs_get(tools, name, "klass") == "AppVM"


def test_create_bad_label(tools, template, cleanup):
    name = new_name("app")
    cleanup.append(name)
    # the tool checks labels itself (admin.label.List) -> usage error
    res = tools("qvm-create", "-t", template, "-l", "nosuchlabel", name)
    assert res.rc == 2, res
    assert "no such label" in res.err
    # straight to the daemon: upstream treats an unknown label as a missing one
    with pytest.raises(qubesadmin.exc.ProtocolError, match="without key: label"):
        fresh_app().add_new_vm("AppVM", name, "nosuchlabel", template)
    assert name not in fresh_app().domains


def test_create_missing_template(tools, cleanup):
    name = new_name("app")
    cleanup.append(name)
    res = tools("qvm-create", "-t", new_name("nosuch"), "-l", "red", name)
    assert res.rc == 1, res
    assert name not in fresh_app().domains


def test_create_invalid_name(tools, template):
    res = tools("qvm-create", "-t", template, "-l", "red", "0starts-digit")
    assert res.rc == 1, res
    assert "0starts-digit" not in fresh_app().domains


# ---------------------------------------------------------------------------
# qvm-ls
# ---------------------------------------------------------------------------

def test_ls_raw_data(tools, template, appvm):
    rows = raw_ls(tools, "--fields", "name,class,state,label")
    assert rows["dom0"] == ["dom0", "AdminVM", "Running", "black"]
    assert rows[template] == [template, "TemplateVM", "Halted", "black"]
    assert rows[appvm] == [appvm, "AppVM", "Halted", "red"]


def test_ls_default_table(tools, template, appvm):
    out = tools.ok("qvm-ls")
    rows = table_rows(out)
    assert rows[0] == ["NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["dom0"][:5] == ["dom0", "Running", "AdminVM", "black", "-"]
    assert by_name[appvm][:5] == [appvm, "Halted", "AppVM", "red", template]
    assert by_name[template][:5] == [template, "Halted", "TemplateVM",
                                     "black", "-"]


def test_ls_property_columns(tools, template, appvm):
    # NB: "memory" is not the property here: qvm-ls has a built-in MEMORY
    # column (current usage via admin.vm.CurrentState, "-" when halted)
    rows = raw_ls(tools, "--fields", "name,vcpus,debug,template,qid,uuid,memory",
                  appvm)
    assert list(rows) == [appvm]
    _, vcpus, debug, tpl, qid, vm_uuid, memory = rows[appvm]
    assert (vcpus, debug, tpl, memory) == ("2", "False", template, "-")
    assert qid.isdigit() and int(qid) > 0
    assert UUID_RE.match(vm_uuid), vm_uuid


def test_ls_disk_format(tools, appvm):
    rows = table_rows(tools.ok("qvm-ls", "--format", "disk", appvm))
    head, row = rows[0], rows[1]
    assert head[:3] == ["NAME", "STATE", "DISK"]
    values = dict(zip(head, row))
    assert values["NAME"] == appvm
    assert values["PRIV-MAX"] == str(2 * 1024)   # MiB
    assert values["ROOT-MAX"] == str(10 * 1024)


def test_ls_filters(tools, template, appvm):
    def names(*args):
        return tools.ok("qvm-ls", "--raw-list", *args).split()

    everything = names()
    assert {"dom0", template, appvm} <= set(everything)
    assert everything == sorted(everything)
    assert template in names("--class", "TemplateVM")
    assert appvm not in names("--class", "TemplateVM")
    assert "dom0" in names("--running")
    assert appvm not in names("--running")
    assert appvm in names("--halted")
    assert "dom0" not in names("--halted")
    assert appvm in names("--label", "red")
    assert template not in names("--label", "red")
    assert appvm in names("--tags", "created-by-dom0")
    assert names("--template-source", template) == [appvm]
    assert names(appvm, template) == sorted([appvm, template])


# ---------------------------------------------------------------------------
# qvm-prefs / qubes-prefs
# ---------------------------------------------------------------------------

def test_prefs_get(tools, appvm):
    assert prefs_get(tools, appvm, "memory") == "400"
    assert prefs_get(tools, appvm, "name") == appvm
    assert prefs_get(tools, appvm, "klass") == "AppVM"


def test_prefs_set(tools, appvm):
    assert tools.ok("qvm-prefs", appvm, "memory", "800") == ""
    assert prefs_get(tools, appvm, "memory") == "800"
    assert tools.ok("qvm-prefs", "--hide-default", appvm, "memory") == "800\n"
    assert fresh_app().domains[appvm].property_is_default("memory") is False


def test_prefs_reset(tools, appvm):
    tools.ok("qvm-prefs", appvm, "memory", "800")
    assert tools.ok("qvm-prefs", "--default", appvm, "memory") == ""
    assert prefs_get(tools, appvm, "memory") == "400"
    assert tools.ok("qvm-prefs", "--hide-default", appvm, "memory") == ""
    assert fresh_app().domains[appvm].property_is_default("memory") is True


def _prefs_listing(out):
    result = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+([D\-U])(?:\s\s(.*))?$", line)
        assert m, line
        result[m.group(1)] = (m.group(2), m.group(3) or "")
    return result


def test_prefs_list_all(tools, template, appvm):
    listing = _prefs_listing(tools.ok("qvm-prefs", appvm))
    assert listing["memory"] == ("D", "400")
    assert listing["name"][1] == appvm
    assert listing["label"][1] == "red"
    assert listing["template"][1] == template
    assert listing["klass"][1] == "AppVM"
    for prop in ("netvm", "vcpus", "qid", "uuid", "guivm", "audiovm"):
        assert prop in listing
    tools.ok("qvm-prefs", appvm, "memory", "800")
    listing = _prefs_listing(tools.ok("qvm-prefs", appvm))
    assert listing["memory"] == ("-", "800")
    hidden = _prefs_listing(tools.ok("qvm-prefs", "--hide-default", appvm))
    assert hidden["memory"] == ("-", "800")
    assert all(flag != "D" for flag, _ in hidden.values())


def test_prefs_help_properties(tools, appvm):
    out = tools.ok("qvm-prefs", "--help-properties", appvm)
    assert re.search(r"^\s*memory\s+\S", out, re.M)


def test_prefs_invalid_values(tools, appvm):
    assert tools("qvm-prefs", appvm, "memory", "notanumber").rc == 1
    assert tools("qvm-prefs", appvm, "memory", "0").rc == 1
    assert tools("qvm-prefs", appvm, "label", "nosuchlabel").rc == 1
    assert tools("qvm-prefs", appvm, "netvm", new_name("nosuch")).rc == 1
    assert tools("qvm-prefs", appvm, "debug", "maybe").rc == 1
    assert prefs_get(tools, appvm, "memory") == "400"
    # unknown property: QubesNoSuchPropertyError -> usage error
    assert tools("qvm-prefs", appvm, "nosuchprop").rc == 2
    assert tools("qvm-prefs", appvm, "nosuchprop", "1").rc == 2
    # write-once
    tools.fails("qvm-prefs", appvm, "name", new_name("renamed"))
    assert appvm in fresh_app().domains
    # unknown qube
    assert tools("qvm-prefs", new_name("nosuch"), "memory").rc == 2


def test_prefs_netvm_none(tools, appvm):
    assert tools.ok("qvm-prefs", appvm, "netvm", "") == ""
    assert tools.ok("qvm-prefs", appvm, "netvm") == ""
    vm = fresh_app().domains[appvm]
    assert vm.netvm is None
    assert vm.property_is_default("netvm") is False
    # "none" is translated to "" by the tool for vm-typed properties
    tools.ok("qvm-prefs", appvm, "netvm", "none")
    assert fresh_app().domains[appvm].netvm is None
    tools.ok("qvm-prefs", "--default", appvm, "netvm")
    assert fresh_app().domains[appvm].property_is_default("netvm") is True


def test_prefs_label_and_bools(tools, appvm):
    tools.ok("qvm-prefs", appvm, "label", "green")
    assert prefs_get(tools, appvm, "label") == "green"
    tools.ok("qvm-prefs", appvm, "debug", "True")
    assert prefs_get(tools, appvm, "debug") == "True"
    tools.ok("qvm-prefs", appvm, "include_in_backups", "false")
    assert prefs_get(tools, appvm, "include_in_backups") == "False"
    tools.ok("qvm-prefs", appvm, "vcpus", "4")
    assert prefs_get(tools, appvm, "vcpus") == "4"


def test_prefs_change_template(tools, make_vm, appvm):
    tpl2 = make_vm("tpl", "--class", "TemplateVM", "-l", "black")
    tools.ok("qvm-prefs", appvm, "template", tpl2)
    assert prefs_get(tools, appvm, "template") == tpl2


def test_prefs_dom0(tools):
    assert prefs_get(tools, "dom0", "klass") == "AdminVM"
    assert prefs_get(tools, "dom0", "label") == "black"
    assert prefs_get(tools, "dom0", "qid") == "0"
    assert prefs_get(tools, "dom0", "uuid") == DOM0_UUID
    listing = _prefs_listing(tools.ok("qvm-prefs", "dom0"))
    assert listing["name"] == ("D", "dom0")
    # dom0's identity is never stored: qubesd reports it as defaults
    assert listing["qid"] == ("D", "0")
    assert listing["uuid"] == ("D", DOM0_UUID)


def test_qubes_prefs_default_template(tools, template, appvm):
    try:
        assert tools.ok("qubes-prefs", "default_template", template) == ""
        assert tools.ok("qubes-prefs", "default_template") == template + "\n"
        listing = _prefs_listing(tools.ok("qubes-prefs"))
        assert listing["default_template"] == ("-", template)
        # default_template must be a TemplateVM
        assert tools("qubes-prefs", "default_template", appvm).rc == 1
        assert tools.ok("qubes-prefs", "default_template") == template + "\n"
    finally:
        tools("qubes-prefs", "--default", "default_template")
    assert fresh_app().property_is_default("default_template") is True


def test_qubes_prefs_list(tools):
    listing = _prefs_listing(tools.ok("qubes-prefs"))
    for prop in ("default_pool", "default_netvm", "default_template",
                 "default_dispvm", "default_guivm", "updatevm", "clockvm"):
        assert prop in listing
    assert listing["stats_interval"] == ("D", "3")
    # set by the installer on a fresh Qubes, not a default
    assert listing["default_pool_kernel"] == ("-", "linux-kernel")
    assert listing["default_guivm"][1] == "dom0"
    assert listing["default_pool"][1] != ""
    assert tools("qubes-prefs", "nosuchprop").rc == 2


def test_device_deny_list(tools, appvm):
    from qubesadmin.device_protocol import DeviceInterface
    vm = fresh_app().domains[appvm]
    vm.devices.deny(DeviceInterface("u03****"), DeviceInterface("b******"))
    assert prefs_get(tools, appvm, "devices_denied") == "b******u03****"
    # already denied: accepted, nothing changes
    fresh_app().domains[appvm].devices.deny(DeviceInterface("u03****"))
    fresh_app().domains[appvm].devices.allow(DeviceInterface("b******"),
                                            DeviceInterface("p02****"))
    assert prefs_get(tools, appvm, "devices_denied") == "u03****"
    raw = fresh_app().qubesd_call(appvm, "admin.vm.device.denied.List")
    assert raw == b"u03****"
    with pytest.raises(qubesadmin.exc.QubesValueError):
        fresh_app().domains[appvm].devices.deny(DeviceInterface("x12****"))


def test_remote_vm(tools, make_vm, appvm):
    assert "RemoteVM" in fresh_app().list_vmclass()
    remote = make_vm("far", "--class", "RemoteVM", "-l", "green")
    tools.ok("qvm-prefs", remote, "relayvm", appvm)
    tools.ok("qvm-prefs", remote, "transport_rpc", "qubesair.SSHProxy")
    listing = _prefs_listing(tools.ok("qvm-prefs", remote))
    assert listing["klass"] == ("D", "RemoteVM")
    assert listing["relayvm"] == ("-", appvm)
    assert listing["include_in_backups"] == ("D", "False")
    assert "memory" not in listing
    assert raw_ls(tools)[remote][1:3] == ["Running", "RemoteVM"]
    assert "relayvm-" + appvm in tools.ok("qvm-tags", remote).split()
    assert _volume_rows(tools.ok("qvm-volume", "list", remote)) == []
    started = tools.fails("qvm-start", remote)
    # qvm-start shows QubesVMNotHaltedError its own way, as against qubesd
    assert "Domain is already running" in started.err


# ---------------------------------------------------------------------------
# qvm-features
# ---------------------------------------------------------------------------

def test_features_set_get_list_unset(tools, appvm):
    assert tools.ok("qvm-features", appvm, "myfeat", "myvalue") == ""
    assert tools.ok("qvm-features", appvm, "myfeat") == "myvalue\n"
    tools.ok("qvm-features", appvm, "other.feat", "1")
    listing = kv_table(tools.ok("qvm-features", appvm))
    assert listing["myfeat"] == "myvalue"
    assert listing["other.feat"] == "1"
    assert tools.ok("qvm-features", "--unset", appvm, "myfeat") == ""
    res = tools("qvm-features", appvm, "myfeat")
    assert (res.rc, res.out) == (1, "")
    tools.ok("qvm-features", "-D", appvm, "other.feat")
    assert tools("qvm-features", appvm, "other.feat").rc == 1
    assert "myfeat" not in kv_table(tools.ok("qvm-features", appvm))


def test_features_empty_and_missing(tools, appvm):
    tools.ok("qvm-features", appvm, "emptyfeat", "")
    assert tools.ok("qvm-features", appvm, "emptyfeat") == "\n"
    assert fresh_app().domains[appvm].features["emptyfeat"] == ""
    assert tools("qvm-features", appvm, "nosuchfeat").rc == 1
    # unsetting a missing feature: the tool swallows the KeyError
    assert tools("qvm-features", "--unset", appvm, "nosuchfeat").rc == 0
    # invalid feature name
    tools.fails("qvm-features", appvm, "bad name!", "x")


def test_features_check_with_template(tools, template, appvm):
    tools.ok("qvm-features", template, "tplfeat", "fromtpl")
    vm = fresh_app().domains[appvm]
    assert vm.features.check_with_template("tplfeat") == "fromtpl"
    assert vm.features.get("tplfeat") is None
    assert vm.features.check_with_template("nosuchfeat", "dflt") == "dflt"


# ---------------------------------------------------------------------------
# qvm-tags
# ---------------------------------------------------------------------------

def test_tags_automatic(tools, template, appvm):
    for vm in (appvm, template):
        tags = tools.ok("qvm-tags", vm).splitlines()
        assert tags == sorted(tags)
        assert {"created-by-dom0", "guivm-dom0", "audiovm-dom0"} <= set(tags)


def test_tags_add_list_del(tools, appvm):
    assert tools.ok("qvm-tags", appvm, "add", "mytag") == ""
    assert "mytag" in tools.ok("qvm-tags", appvm, "list").splitlines()
    assert tools.ok("qvm-tags", appvm, "list", "mytag") == "mytag\n"
    tools.ok("qvm-tags", appvm, "add", "t-one", "t_two")
    tags = tools.ok("qvm-tags", appvm, "ls").splitlines()
    assert {"mytag", "t-one", "t_two"} <= set(tags)
    assert tools.ok("qvm-tags", appvm, "del", "mytag") == ""
    assert tools("qvm-tags", appvm, "list", "mytag").rc == 1
    assert "mytag" not in tools.ok("qvm-tags", appvm).splitlines()
    # removing an absent tag: QubesTagNotFoundError is swallowed (KeyError)
    assert tools("qvm-tags", appvm, "del", "mytag").rc == 0
    # adding twice is idempotent
    tools.ok("qvm-tags", appvm, "add", "t-one")
    assert tools.ok("qvm-tags", appvm).splitlines().count("t-one") == 1


def test_tags_invalid(tools, appvm):
    assert tools("qvm-tags", appvm, "add", "bad tag!").rc == 1
    assert tools("qvm-tags", appvm, "list", "bad:tag").rc != 0


def test_tags_follow_guivm_audiovm(tools, appvm):
    tools.ok("qvm-prefs", appvm, "guivm", "")
    tools.ok("qvm-prefs", appvm, "audiovm", "")
    tags = tools.ok("qvm-tags", appvm).splitlines()
    assert "guivm-dom0" not in tags
    assert "audiovm-dom0" not in tags
    tools.ok("qvm-prefs", "--default", appvm, "guivm")
    assert "guivm-dom0" in tools.ok("qvm-tags", appvm).splitlines()


# ---------------------------------------------------------------------------
# qvm-volume
# ---------------------------------------------------------------------------

def _volume_rows(out):
    rows = table_rows(out)
    assert rows[0] == ["POOL:VOLUME", "VMNAME", "VOLUME_NAME",
                       "REVERT_POSSIBLE"]
    return rows[1:]


def test_volume_list_vm(tools, appvm):
    rows = _volume_rows(tools.ok("qvm-volume", "list", appvm))
    pairs = {(row[1], row[2]) for row in rows}
    assert {(appvm, "root"), (appvm, "private"), (appvm, "volatile")} <= pairs
    assert all(row[1] == appvm for row in rows)
    info, _ = volume_info(tools, appvm + ":private")
    private = [row for row in rows if row[2] == "private"][0]
    assert private[0] == "{}:{}".format(info["pool"], info["vid"])
    assert private[3] == "No"


def test_volume_ls_all(tools, template, appvm):
    for args in (["ls"], [], ["list", "--full"]):
        rows = _volume_rows(tools.ok("qvm-volume", *args))
        pairs = {(row[1], row[2]) for row in rows if len(row) >= 3}
        assert (appvm, "private") in pairs
        assert (template, "root") in pairs
    pool = volume_info(tools, appvm + ":private")[0]["pool"]
    rows = _volume_rows(tools.ok("qvm-volume", "list", "-p", pool))
    assert all(row[0].startswith(pool + ":") for row in rows)


def test_volume_info(tools, template, appvm):
    info, out = volume_info(tools, appvm + ":private")
    assert info["pool"] and info["vid"]
    assert info["rw"] == "True"
    assert info["save_on_stop"] == "True"
    assert info["snap_on_start"] == "False"
    assert info["size"] == str(2 * GiB)
    assert info["is_outdated"] == "False"
    assert "List of available revisions (for revert): none" in out
    root, _ = volume_info(tools, appvm + ":root")
    tpl_root, _ = volume_info(tools, template + ":root")
    assert root["snap_on_start"] == "True"
    assert root["save_on_stop"] == "False"
    assert root["source"] == tpl_root["vid"]
    assert tpl_root["save_on_stop"] == "True"
    volatile, _ = volume_info(tools, appvm + ":volatile")
    assert volatile["save_on_stop"] == "False"
    assert volatile["snap_on_start"] == "False"


def test_volume_info_single_property(tools, appvm):
    assert tools.ok("qvm-volume", "info", appvm + ":private", "size") == \
        "{}\n".format(2 * GiB)
    assert tools.ok("qvm-volume", "info", appvm + ":private", "rw") == "True\n"
    assert tools.ok("qvm-volume", "info", appvm + ":private",
                    "revisions") == ""
    assert tools("qvm-volume", "info", appvm + ":private", "nosuch").rc == 1
    # unknown volume / qube: client-side usage errors
    assert tools("qvm-volume", "info", appvm + ":nosuchvol").rc != 0
    assert tools("qvm-volume", "info", new_name("nosuch") + ":private").rc != 0


def test_volume_resize(tools, appvm):
    tools.ok("qvm-volume", "resize", appvm + ":private", "3GiB")
    assert volume_info(tools, appvm + ":private")[0]["size"] == str(3 * GiB)
    tools.ok("qvm-volume", "extend", appvm + ":private", str(3 * GiB + 4 * MiB))
    assert volume_info(tools, appvm + ":private")[0]["size"] == \
        str(3 * GiB + 4 * MiB)
    # shrinking is refused by the client unless --force
    res = tools("qvm-volume", "resize", appvm + ":private", "1GiB")
    assert res.rc == 1 and "Refusing to shrink" in res.err, res
    assert tools("qvm-volume", "resize", appvm + ":private", "lots").rc == 1


def test_volume_config(tools, appvm):
    tools.ok("qvm-volume", "config", appvm + ":private", "revisions_to_keep",
             "0")
    assert volume_info(tools, appvm + ":private")[0]["revisions_to_keep"] \
        == "0"
    tools.ok("qvm-volume", "set", appvm + ":volatile", "ephemeral", "True")
    assert volume_info(tools, appvm + ":volatile")[0]["ephemeral"] == "True"
    tools.ok("qvm-volume", "config", appvm + ":private", "rw", "False")
    assert volume_info(tools, appvm + ":private")[0]["rw"] == "False"
    tools.ok("qvm-volume", "config", appvm + ":private", "rw", "True")
    assert tools("qvm-volume", "config", appvm + ":private", "size",
                 "1").rc == 1
    tools.fails("qvm-volume", "config", appvm + ":private",
                "revisions_to_keep", "many")


def test_volume_revisions_and_revert(tools, appvm):
    assert tools.ok("qvm-volume", "info", appvm + ":private",
                    "revisions") == ""
    res = tools("qvm-volume", "revert", appvm + ":private")
    assert res.rc == 1 and "No snapshots available" in res.err, res
    tools.fails("qvm-volume", "revert", appvm + ":private", "nosuchrevision")


def test_volume_clone_and_clear(tools, template, make_vm):
    src = make_vm("src", "-t", template, "-l", "red")
    dst = make_vm("dst", "-t", template, "-l", "red")
    tools.ok("qvm-volume", "resize", src + ":private", "3GiB")
    tools.ok("qvm-volume", "clone", "--force", src + ":private",
             dst + ":private")
    assert volume_info(tools, dst + ":private")[0]["size"] == str(3 * GiB)
    # only save_on_stop volumes can be cloned (client-side check)
    assert tools("qvm-volume", "clone", "--force", src + ":volatile",
                 dst + ":volatile").rc == 1
    tools.ok("qvm-volume", "clear", "--force", dst + ":private")
    assert volume_info(tools, dst + ":private")[0]["size"] == str(3 * GiB)


# The tool streams the data through an *executable* qrexec service, not the
# socket: QubesLocal.qubesd_call(payload_stream=...) runs
#   [sudo] env QREXEC_REMOTE_DOMAIN=dom0 QREXEC_REQUESTED_TARGET=<vm> \
#       <qubesadmin.config.QREXEC_SERVICES_DIR>/admin.vm.volume.ImportWithSize <vol>
# (admin.vm.volume.Import with --no-resize), "sudo" prepended when not root;
# default dir /etc/qubes-rpc.  stdin = "<size>\n" (WithSize only) + data;
# stdout = a raw qubesd reply, parsed like a socket reply.  The service calls
# internal.vm.volume.ImportBegin / ImportEnd on the internal socket (spec
# 4.5).  run.sh installs corral's own service (`corral install-services`)
# and points CORRAL_QREXEC_SERVICES_DIR at it.


def _import_services(tmp_path, monkeypatch):
    services = os.environ.get("CORRAL_QREXEC_SERVICES_DIR")
    if not services:
        pytest.skip("CORRAL_QREXEC_SERVICES_DIR (corral's import service) not set")
    monkeypatch.setattr(qubesadmin.config, "QREXEC_SERVICES_DIR", services)
    # QubesLocal prefixes the command with "sudo" when os.getuid() != 0
    monkeypatch.setattr(qubesadmin.app, "os", _OsProxy(getuid=lambda: 0))


def test_volume_import(tools, appvm, tmp_path, monkeypatch):
    _import_services(tmp_path, monkeypatch)
    data = os.urandom(4 * MiB)
    image = tmp_path / "private.img"
    image.write_bytes(data)
    res = tools("qvm-volume", "import", appvm + ":private", str(image))
    assert res.rc == 0, res
    info, _ = volume_info(tools, appvm + ":private")
    assert info["size"] == str(len(data))


def test_volume_import_short_data(tools, appvm, tmp_path, monkeypatch):
    _import_services(tmp_path, monkeypatch)
    image = tmp_path / "short.img"
    image.write_bytes(b"\0" * MiB)
    res = tools("qvm-volume", "import", "--size", str(2 * MiB),
                appvm + ":private", str(image))
    assert res.rc == 1, res
    assert "Data import failed" in res.err, res
    # a failed import leaves the volume as it was
    assert volume_info(tools, appvm + ":private")[0]["size"] == str(2 * GiB)


# ---------------------------------------------------------------------------
# qvm-pool
# ---------------------------------------------------------------------------

def _pool_list(tools, *args):
    rows = table_rows(tools.ok("qvm-pool", *args))
    assert rows[0] == ["NAME", "DRIVER"]
    return {row[0]: row[1] for row in rows[1:]}


@pytest.fixture
def pool_cleanup():
    names = []
    yield names
    for name in names:
        try:
            fresh_app().remove_pool(name)
        except Exception:  # pylint: disable=broad-except
            pass


def test_pool_list(tools):
    pools = _pool_list(tools, "list")
    assert pools == _pool_list(tools)          # default action
    assert "varlibqubes" in pools
    assert "linux-kernel" in pools
    assert pools["linux-kernel"] == "linux-kernel"
    default_pool = tools.ok("qubes-prefs", "default_pool").strip()
    assert default_pool in pools


def test_pool_drivers(tools):
    rows = tools.ok("qvm-pool", "drivers").splitlines()
    assert rows[0].split() == ["DRIVER", "OPTIONS"]
    drivers = {}
    for row in rows[1:]:
        name, _, opts = row.strip().partition(" ")
        drivers[name] = [o.strip() for o in opts.split(",")]
    assert "file" in drivers
    assert {"dir_path", "revisions_to_keep"} <= set(drivers["file"])


def test_pool_info(tools):
    default_pool = tools.ok("qubes-prefs", "default_pool").strip()
    info = kv_table(tools.ok("qvm-pool", "info", default_pool))
    assert info["name"] == default_pool
    assert info["driver"]
    assert tools("qvm-pool", "info", new_name("nosuch")).rc != 0


def test_pool_add_set_remove(tools, tmp_path, pool_cleanup):
    name = new_name("pool")
    pool_cleanup.append(name)
    pool_dir = tmp_path / "pooldir"
    pool_dir.mkdir()
    tools.ok("qvm-pool", "add", name, "file", "-o",
             "dir_path={}".format(pool_dir), "-o", "revisions_to_keep=1")
    assert _pool_list(tools)[name] == "file"
    info = kv_table(tools.ok("qvm-pool", "info", name))
    assert info["name"] == name
    assert info["driver"] == "file"
    assert info["dir_path"] == str(pool_dir)
    assert info["revisions_to_keep"] == "1"
    tools.ok("qvm-pool", "set", name, "-o", "revisions_to_keep=0")
    info = kv_table(tools.ok("qvm-pool", "info", name))
    assert info["revisions_to_keep"] == "0"
    assert fresh_app().pools[name].revisions_to_keep == 0
    tools.ok("qvm-pool", "remove", name)
    assert name not in _pool_list(tools)


def test_pool_add_errors(tools, tmp_path, pool_cleanup):
    name = new_name("pool")
    pool_cleanup.append(name)
    # missing required dir_path
    assert tools("qvm-pool", "add", name, "file").rc == 1
    assert name not in _pool_list(tools)
    tools.ok("qvm-pool", "add", name, "file", "-o",
             "dir_path={}".format(tmp_path))
    # duplicate name -> QubesPoolInUseError
    assert tools("qvm-pool", "add", name, "file", "-o",
                 "dir_path={}".format(tmp_path)).rc == 1
    # unknown driver -> PermissionDenied (escapes the tool)
    tools.fails("qvm-pool", "add", new_name("pool"), "nosuchdriver", "-o",
                "dir_path={}".format(tmp_path))
    # unknown pool -> PermissionDenied (escapes the tool)
    tools.fails("qvm-pool", "remove", new_name("nosuch"))


def test_pool_in_use(tools, tmp_path, template, cleanup, pool_cleanup):
    name = new_name("pool")
    pool_cleanup.append(name)
    tools.ok("qvm-pool", "add", name, "file", "-o",
             "dir_path={}".format(tmp_path))
    vm = new_name("inpool")
    cleanup.append(vm)
    tools.ok("qvm-create", "-P", name, "-t", template, "-l", "red", vm)
    assert volume_info(tools, vm + ":private")[0]["pool"] == name
    assert volume_info(tools, vm + ":volatile")[0]["pool"] == name
    # root is a snapshot of the template's root: stays in the origin's pool
    assert volume_info(tools, vm + ":root")[0]["pool"] == \
        volume_info(tools, template + ":root")[0]["pool"]
    vids = fresh_app().qubesd_call("dom0", "admin.pool.volume.List",
                                   name).decode().splitlines()
    assert volume_info(tools, vm + ":private")[0]["vid"] in vids
    assert tools("qvm-pool", "remove", name).rc == 1
    assert name in _pool_list(tools)
    tools.ok("qvm-remove", "-f", vm)
    tools.ok("qvm-pool", "remove", name)


def test_create_with_volume_pool(tools, tmp_path, template, cleanup,
                                 pool_cleanup):
    name = new_name("pool")
    pool_cleanup.append(name)
    tools.ok("qvm-pool", "add", name, "file", "-o",
             "dir_path={}".format(tmp_path))
    vm = new_name("inpool")
    cleanup.append(vm)
    tools.ok("qvm-create", "-p", "private=" + name, "-t", template, "-l",
             "red", vm)
    assert volume_info(tools, vm + ":private")[0]["pool"] == name
    assert volume_info(tools, vm + ":volatile")[0]["pool"] != name
    tools.ok("qvm-remove", "-f", vm)


# ---------------------------------------------------------------------------
# qvm-firewall
# ---------------------------------------------------------------------------

FW_HEADER = ["NO", "ACTION", "HOST", "PROTOCOL", "PORT(S)", "SPECIAL",
             "TARGET", "ICMP", "TYPE", "EXPIRE", "COMMENT"]


def test_firewall_default(tools, appvm):
    assert firewall_raw(tools, appvm) == ["action=accept"]
    for args in ([appvm], [appvm, "list"]):
        rows = table_rows(tools.ok("qvm-firewall", *args))
        assert rows[0] == FW_HEADER
        assert rows[1:] == [["0", "accept"] + ["-"] * 7]


def test_firewall_add_del(tools, appvm):
    tools.ok("qvm-firewall", appvm, "add", "accept", "dsthost=example.com",
             "proto=tcp", "dstports=443")
    rules = firewall_raw(tools, appvm)
    assert len(rules) == 2
    assert rules[0] == "action=accept"
    assert rule_tokens(rules[1]) == {"action=accept", "dsthost=example.com",
                                     "proto=tcp", "dstports=443-443"}
    rows = table_rows(tools.ok("qvm-firewall", appvm))
    assert rows[2][:5] == ["1", "accept", "example.com", "tcp", "443"]
    tools.ok("qvm-firewall", appvm, "del", "accept", "dsthost=example.com",
             "proto=tcp", "dstports=443")
    assert firewall_raw(tools, appvm) == ["action=accept"]
    tools.ok("qvm-firewall", appvm, "add", "drop", "proto=udp")
    tools.ok("qvm-firewall", appvm, "del", "--rule-no", "1")
    assert firewall_raw(tools, appvm) == ["action=accept"]


def test_firewall_complex_rules(tools, appvm):
    tools.ok("qvm-firewall", appvm, "reset")
    tools.ok("qvm-firewall", appvm, "add", "--before", "0", "accept",
             "specialtarget=dns")
    tools.ok("qvm-firewall", appvm, "add", "drop", "dst4=192.168.0.0/16",
             "proto=icmp", "icmptype=8")
    tools.ok("qvm-firewall", appvm, "add", "accept", "10.1.2.3", "udp",
             "1000-2000")
    tools.ok("qvm-firewall", appvm, "add", "drop", "dsthost=2001:db8::/32",
             "comment=no documentation nets")
    tools.ok("qvm-firewall", appvm, "add", "accept", "dsthost=example.org",
             "expire=+3600")
    rules = [rule_tokens(r) for r in firewall_raw(tools, appvm)]
    assert rules[0] == {"action=accept", "specialtarget=dns"}
    assert rules[1] == {"action=accept"}
    assert rules[2] == {"action=drop", "dst4=192.168.0.0/16", "proto=icmp",
                        "icmptype=8"}
    assert rules[3] == {"action=accept", "dst4=10.1.2.3/32", "proto=udp",
                        "dstports=1000-2000"}
    assert rules[4] == {"action=drop", "dst6=2001:db8::/32",
                        "comment=no documentation nets"}
    expire = [t for t in rules[5] if t.startswith("expire=")]
    assert len(expire) == 1 and expire[0][len("expire="):].isdigit()
    assert rules[5] - set(expire) == {"action=accept", "dsthost=example.org"}
    # the table renders every rule
    assert len(table_rows(tools.ok("qvm-firewall", appvm))) == 1 + 6


def test_firewall_reset(tools, appvm):
    tools.ok("qvm-firewall", appvm, "add", "drop", "dsthost=example.com")
    tools.ok("qvm-firewall", appvm, "add", "drop")
    assert len(firewall_raw(tools, appvm)) == 3
    tools.ok("qvm-firewall", appvm, "reset")
    assert firewall_raw(tools, appvm) == ["action=accept"]


def test_firewall_reload(tools, appvm):
    tools.ok("qvm-firewall", "--reload", appvm, "list")


def test_firewall_dom0(tools):
    # admin.vm.firewall.* refuse dom0 with a ProtocolError
    tools.fails("qvm-firewall", "--raw", "dom0", "list")


# ---------------------------------------------------------------------------
# qvm-clone
# ---------------------------------------------------------------------------

@pytest.fixture
def clone_env(tmp_path, monkeypatch):
    """clone_vm() runs `qvm-appmenus --init --update --source SRC DST` and
    fails (removing the clone) when it is missing; as root it additionally
    wants a 'qubes' group member to runuser as.  Provide a no-op
    qvm-appmenus and make qubesadmin.app believe it is not root."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    appmenus = bindir / "qvm-appmenus"
    appmenus.write_text("#!/bin/sh\nexit 0\n")
    appmenus.chmod(0o755)
    monkeypatch.setenv("PATH", "{}:{}".format(bindir, os.environ["PATH"]))
    monkeypatch.setattr(qubesadmin.app, "os", _OsProxy(getuid=lambda: 1000))


def test_clone(tools, template, make_vm, cleanup, clone_env):
    src = make_vm("src", "-t", template, "-l", "green")
    tools.ok("qvm-prefs", src, "memory", "700")
    tools.ok("qvm-prefs", src, "vcpus", "3")
    tools.ok("qvm-features", src, "myfeat", "myvalue")
    tools.ok("qvm-features", src, "service.myservice", "1")
    tools.ok("qvm-tags", src, "add", "mytag")
    tools.ok("qvm-firewall", src, "add", "accept", "dsthost=example.com",
             "proto=tcp", "dstports=443")
    tools.ok("qvm-notes", src, "--set", "some notes")
    tools.ok("qvm-volume", "resize", src + ":private", "3GiB")

    dst = new_name("dst")
    cleanup.append(dst)
    res = tools("qvm-clone", src, dst)
    assert res.rc == 0, res

    vm = fresh_app().domains[dst]
    assert vm.klass == "AppVM"
    assert prefs_get(tools, dst, "template") == template
    assert prefs_get(tools, dst, "label") == "green"
    assert prefs_get(tools, dst, "memory") == "700"
    assert prefs_get(tools, dst, "vcpus") == "3"
    assert vm.property_is_default("memory") is False
    assert vm.property_is_default("maxmem") is True
    assert tools.ok("qvm-features", dst, "myfeat") == "myvalue\n"
    assert tools.ok("qvm-features", dst, "service.myservice") == "1\n"
    tags = tools.ok("qvm-tags", dst).splitlines()
    assert {"mytag", "created-by-dom0"} <= set(tags)
    assert firewall_raw(tools, dst) == firewall_raw(tools, src)
    assert tools.ok("qvm-notes", dst, "--print") == "some notes\n"
    assert volume_info(tools, dst + ":private")[0]["size"] == str(3 * GiB)
    assert prefs_get(tools, dst, "uuid") != prefs_get(tools, src, "uuid")
    # the source is unchanged
    assert prefs_get(tools, src, "memory") == "700"


def test_clone_to_existing_name(tools, template, appvm, clone_env):
    res = tools("qvm-clone", appvm, template)
    assert res.rc == 1, res
    assert prefs_get(tools, template, "klass") == "TemplateVM"
    assert tools("qvm-clone", new_name("nosuch"), new_name("x")).rc == 2


# ---------------------------------------------------------------------------
# qvm-remove (+ qvm-check)
# ---------------------------------------------------------------------------

def test_remove(tools, template):
    vm = new_name("gone")
    tools.ok("qvm-create", "-t", template, "-l", "red", vm)
    assert vm in tools.ok("qvm-ls", "--raw-list").split()
    assert tools.ok("qvm-remove", "-f", vm) == ""
    assert vm not in tools.ok("qvm-ls", "--raw-list").split()
    assert tools("qvm-check", vm).rc == 1
    assert tools("qvm-prefs", vm, "memory").rc == 2
    assert tools("qvm-remove", "-f", vm).rc == 2


def test_remove_template_in_use(tools, template, appvm):
    res = tools("qvm-remove", "-f", template)
    assert res.rc == 1, res
    assert "cannot be removed" in res.err
    assert "template for {}".format(appvm) in res.err
    assert template in fresh_app().domains


def test_remove_dom0(tools):
    res = tools("qvm-remove", "-f", "dom0")
    assert res.rc == 1 and "cannot be removed" in res.err, res
    with pytest.raises(qubesadmin.exc.QubesException):
        del fresh_app().domains["dom0"]


def test_remove_refuses_the_default_template(tools):
    tpl = new_name("tpl")
    tools.ok("qvm-create", "--class", "TemplateVM", "-l", "black", tpl)
    try:
        tools.ok("qubes-prefs", "default_template", tpl)
        res = tools("qvm-remove", "-f", tpl)
        assert res.rc == 1
        assert "default_template" in res.err
        assert tools.ok("qubes-prefs", "default_template").strip() == tpl
    finally:
        tools("qubes-prefs", "--default", "default_template")
        tools("qvm-remove", "-f", tpl)


def test_check(tools, template, appvm):
    assert tools("qvm-check", appvm).rc == 0
    assert tools("qvm-check", appvm, template).rc == 0
    assert tools("qvm-check", new_name("nosuch")).rc == 1
    assert tools("qvm-check", "--template", template).rc == 0
    assert tools("qvm-check", "--template", appvm).rc == 1
    # --running uses admin.vm.CurrentState
    assert tools("qvm-check", "--running", "dom0").rc == 0
    assert tools("qvm-check", "--running", appvm).rc == 1


def test_current_state_halted(appvm):
    vm = fresh_app().domains[appvm]
    assert vm.get_power_state() == "Halted"
    raw = fresh_app().qubesd_call(appvm, "admin.vm.CurrentState").decode()
    assert raw == "mem=0 mem_static_max=0 cputime=0 power_state=Halted"


def test_notes(tools, appvm):
    assert tools.ok("qvm-notes", appvm, "--print") == "\n"
    tools.ok("qvm-notes", appvm, "--set", "first line")
    tools.ok("qvm-notes", appvm, "--append", "second line")
    assert tools.ok("qvm-notes", appvm, "--print") == \
        "first line\nsecond line\n"
    tools.ok("qvm-notes", appvm, "--set", "replaced")
    assert tools.ok("qvm-notes", appvm, "-p") == "replaced\n"


# ---------------------------------------------------------------------------
# A real guest (tests/guest/run.sh sets CORRAL_GUEST_DIR and points corrald
# at a real QEMU connection): the lifecycle tools against a booting qube.
# ---------------------------------------------------------------------------

GUEST_DIR = os.environ.get("CORRAL_GUEST_DIR")
real_guest = pytest.mark.skipif(
    not GUEST_DIR, reason="CORRAL_GUEST_DIR not set (tests/guest/run.sh)")


def _wait(predicate, what, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def _ls_state(tools, vm):
    out = tools.ok("qvm-ls", "--raw-data", "--fields", "name,state", vm)
    return out.strip().split("|")[1]


def _console_has_marker(vm):
    state = os.environ["CORRAL_STATE_DIR"]
    path = os.path.join(state, "logs", vm + ".console")
    try:
        with open(path, errors="replace") as f:
            return "CORRAL-GUEST-READY" in f.read()
    except OSError:
        return False


@pytest.fixture
def guest(tools, cleanup):
    kernels = os.path.join(os.environ["CORRAL_STATE_DIR"], "vm-kernels")
    os.makedirs(kernels, exist_ok=True)
    link = os.path.join(kernels, "tiny")
    if not os.path.islink(link):
        os.symlink(GUEST_DIR, link)
    tpl, vm = new_name("gtpl"), new_name("guest")
    cleanup.extend([tpl, vm])
    tools.ok("qvm-create", "--class", "TemplateVM", "-l", "black", tpl)
    tools.ok("qvm-create", "-t", tpl, "-l", "red", vm,
             "--prop", "kernel=tiny", "--prop", "memory=128",
             "--prop", "vcpus=1")
    yield vm
    tools("qvm-kill", vm)


@real_guest
def test_real_guest_start_ls_pause_shutdown(tools, guest):
    tools.ok("qvm-start", guest)
    _wait(lambda: _console_has_marker(guest), "the guest's marker")
    assert _ls_state(tools, guest) == "Running"
    tools.ok("qvm-pause", guest)
    assert _ls_state(tools, guest) == "Paused"
    tools.ok("qvm-unpause", guest)
    assert _ls_state(tools, guest) == "Running"
    tools.ok("qvm-shutdown", "--wait", guest)
    assert _ls_state(tools, guest) == "Halted"


@real_guest
def test_real_guest_kill(tools, guest):
    tools.ok("qvm-start", guest)
    _wait(lambda: _console_has_marker(guest), "the guest's marker")
    tools.ok("qvm-kill", guest)
    assert _ls_state(tools, guest) == "Halted"
