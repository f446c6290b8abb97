use super::*;

// ---- tokens -------------------------------------------------------------------------------------------------

#[test]
fn every_token_kind_reads_where_upstream_allows_it() {
    use Place::*;
    let cases: &[(&str, Token, &[Place])] = &[
        ("*", Token::Wildcard, &[Source, Target]),
        ("@anyvm", Token::AnyVm, &[Source, Target]),
        ("@adminvm", Token::AdminVm, &[Source, Target, Redirect, IntendedTarget]),
        ("@default", Token::Default, &[Target, IntendedTarget]),
        ("@dispvm", Token::DispVm, &[Target, Redirect, IntendedTarget]),
        ("@dispvm:tpl", Token::DispVmOf("tpl".into()), &[Source, Target, Redirect, IntendedTarget]),
        ("@dispvm:@tag:t", Token::DispVmTag("t".into()), &[Source, Target]),
        ("@tag:t", Token::Tag("t".into()), &[Source, Target]),
        ("@type:AppVM", Token::Type("AppVM".into()), &[Source, Target]),
        ("work", Token::Name("work".into()), &[Source, Target, Redirect, IntendedTarget]),
        ("uuid:1234", Token::Name("uuid:1234".into()), &[Source, Target, Redirect, IntendedTarget]),
    ];
    for (text, token, places) in cases {
        for place in [Source, Target, Redirect, IntendedTarget] {
            let got = Token::parse(text, place);
            if places.contains(&place) {
                assert_eq!(got.as_ref(), Ok(token), "{text} as {place}");
                assert_eq!(token.to_string(), *text);
            } else {
                assert_eq!(got, Err(TokenError::Invalid { place, token: (*text).into() }), "{text} as {place}");
            }
        }
    }
}

#[test]
fn malformed_tokens_are_refused() {
    use Place::*;
    assert_eq!(Token::parse("", Source), Err(TokenError::Empty(Source)));
    assert_eq!(Token::parse("@tag:", Target), Err(TokenError::EmptyValue { place: Target, prefix: "@tag:" }));
    assert_eq!(Token::parse("@dispvm:", Redirect), Err(TokenError::EmptyValue { place: Redirect, prefix: "@dispvm:" }));
    assert_eq!(
        Token::parse("@dispvm:@tag:", Target),
        Err(TokenError::EmptyValue { place: Target, prefix: "@dispvm:@tag:" })
    );
    for bad in ["@tag:@x", "@dispvm:@anyvm", "@foo", "@type:@x", "@dispvm:@tag:@x", "@ANYVM"] {
        assert!(matches!(Token::parse(bad, Target), Err(TokenError::Invalid { .. })), "{bad}");
    }
    // `@dispvm:@tag:` is not a redirect: a tag names no single template.
    assert!(Token::parse("@dispvm:@tag:t", Redirect).is_err());
}

#[test]
fn dom0_has_three_spellings() {
    assert!(is_dom0("dom0"));
    assert!(is_dom0("@adminvm"));
    assert!(is_dom0("uuid:00000000-0000-0000-0000-000000000000"));
    assert!(!is_dom0("work"));
    assert!(!is_dom0("uuid:00000000-0000-0000-0000-000000000001"));
}

// ---- parser -------------------------------------------------------------------------------------------------

fn rules(text: &str) -> Vec<Rule> {
    parse_file("test.policy", text)
        .expect("valid policy")
        .into_iter()
        .filter_map(|e| match e {
            Entry::Rule(r) => Some(r),
            Entry::Directive { .. } => None,
        })
        .collect()
}

#[test]
fn a_rule_reads_into_its_typed_parts() {
    let text = "# comment\n\n   \nqubes.Filecopy +x work @tag:t allow target=dom0 user=root notify=yes autostart=no\n";
    let r = rules(text);
    assert_eq!(
        r,
        vec![Rule {
            service: Some("qubes.Filecopy".into()),
            argument: Some("+x".into()),
            source: Token::Name("work".into()),
            target: Token::Tag("t".into()),
            action: Action::Allow {
                target: Some(Token::Name("dom0".into())),
                user: Some("root".into()),
                notify: true,
                autostart: false,
            },
            origin: Origin { file: "test.policy".into(), line: 4 },
        }]
    );
}

#[test]
fn options_have_upstreams_defaults() {
    let r = rules("* * @anyvm @anyvm allow\n* * @anyvm @anyvm deny\n* * @anyvm @anyvm ask\ns + @anyvm * deny");
    assert_eq!(r[0].action, Action::Allow { target: None, user: None, notify: false, autostart: true });
    assert_eq!(r[1].action, Action::Deny { notify: true });
    assert_eq!(
        r[2].action,
        Action::Ask { target: None, default_target: None, user: None, notify: false, autostart: true }
    );
    assert_eq!((r[0].service.as_deref(), r[0].argument.as_deref()), (None, None));
    assert_eq!((r[3].service.as_deref(), r[3].argument.as_deref()), (Some("s"), Some("+")));
    let ask = rules("s * @anyvm @dispvm ask target=@dispvm:tpl default_target=@dispvm:tpl notify=no");
    assert_eq!(
        ask[0].action,
        Action::Ask {
            target: Some(Token::DispVmOf("tpl".into())),
            default_target: Some(Token::DispVmOf("tpl".into())),
            user: None,
            notify: false,
            autostart: true
        }
    );
}

#[test]
fn directives_are_typed_not_followed() {
    let text = "!include include/a\n!include-dir /etc/d\n!include-service s +a include/old\n!compat-4.0\n";
    let e = parse_file("f.policy", text).expect("valid");
    let d: Vec<(Directive, usize)> = e
        .into_iter()
        .map(|e| match e {
            Entry::Directive { directive, origin } => (directive, origin.line),
            Entry::Rule(r) => panic!("unexpected rule {r:?}"),
        })
        .collect();
    assert_eq!(
        d,
        vec![
            (Directive::Include("include/a".into()), 1),
            (Directive::IncludeDir("/etc/d".into()), 2),
            (Directive::IncludeService { service: "s".into(), argument: "+a".into(), path: "include/old".into() }, 3),
            (Directive::Compat40, 4),
        ]
    );
}

#[test]
fn old_format_reads_dollar_and_commas() {
    let text = "$anyvm $dispvm allow,target=$dispvm:tpl,user=u\n$include:other\n!include more\nwork $default ask\n";
    let e = parse_service_file("qubes.Svc", "*", "old", text).expect("valid");
    assert_eq!(e.len(), 4);
    let Entry::Rule(r) = &e[0] else { panic!("rule expected") };
    assert_eq!((r.service.as_deref(), r.argument.as_deref()), (Some("qubes.Svc"), None));
    assert_eq!(r.source, Token::AnyVm);
    assert_eq!(r.target, Token::DispVm);
    assert_eq!(
        r.action,
        Action::Allow {
            target: Some(Token::DispVmOf("tpl".into())),
            user: Some("u".into()),
            notify: false,
            autostart: true
        }
    );
    for (i, path) in [(1, "other"), (2, "more")] {
        assert_eq!(
            e[i],
            Entry::Directive {
                directive: Directive::IncludeService {
                    service: "qubes.Svc".into(),
                    argument: "*".into(),
                    path: path.into()
                },
                origin: Origin { file: "old".into(), line: i + 1 },
            }
        );
    }
    let err = parse_service_file("s", "*", "old", "work\n").expect_err("too short");
    assert_eq!(err.kind, SyntaxErrorKind::WrongNumberOfFields);
    let err = parse_service_file("s", "*", "old", "!include-dir x\n").expect_err("not in old format");
    assert_eq!(err.kind, SyntaxErrorKind::UnknownDirective("!include-dir".into()));
    // The service comes from the directive and is checked like a rule's.
    let err = parse_service_file("s+x", "*", "old", "@anyvm @anyvm deny\n").expect_err("bad service");
    assert_eq!(err.kind, SyntaxErrorKind::BadService("s+x".into()));
}

#[test]
fn syntax_errors_say_where_and_why() {
    use SyntaxErrorKind as K;
    let inv = |place, t: &str| K::Token(TokenError::Invalid { place, token: t.into() });
    let table: Vec<(&str, SyntaxErrorKind)> = vec![
        ("s + work", K::WrongNumberOfFields),
        ("s + work dom0", K::WrongNumberOfFields),
        ("s+x * @anyvm @anyvm allow", K::BadService("s+x".into())),
        ("s/x * @anyvm @anyvm allow", K::BadService("s/x".into())),
        ("s +a/b @anyvm @anyvm allow", K::BadArgument("+a/b".into())),
        ("s arg @anyvm @anyvm allow", K::ArgumentWithoutPlus("arg".into())),
        ("* +arg @anyvm @anyvm allow", K::ArgumentForWildcardService),
        ("s * @default @anyvm allow", inv(Place::Source, "@default")),
        ("s * @dispvm @anyvm allow", inv(Place::Source, "@dispvm")),
        ("s * @anyvm @bogus allow", inv(Place::Target, "@bogus")),
        ("s * @anyvm @anyvm allow target=@anyvm", inv(Place::Redirect, "@anyvm")),
        ("s * @anyvm @anyvm allow target=*", inv(Place::Redirect, "*")),
        ("s * @anyvm @anyvm allow target=@default", inv(Place::Redirect, "@default")),
        ("s * @anyvm @anyvm ask default_target=@tag:x", inv(Place::Redirect, "@tag:x")),
        ("s * @anyvm @anyvm ask target=@type:AppVM", inv(Place::Redirect, "@type:AppVM")),
        ("s * @anyvm @anyvm allow target=", K::Token(TokenError::Empty(Place::Redirect))),
        ("s * @anyvm @anyvm permit", K::UnknownAction("permit".into())),
        ("s * @anyvm @anyvm Allow", K::UnknownAction("Allow".into())),
        ("s * @anyvm @anyvm allow user", K::OptionSyntax("user".into())),
        // A comment is a whole line; after a rule it is read as an option.
        ("s * @anyvm @anyvm allow # why", K::OptionSyntax("#".into())),
        ("s * @anyvm @anyvm allow user=a user=b", K::DuplicateOption("user".into())),
        ("s * @anyvm @anyvm allow notify=1", K::NotYesNo { key: "notify".into(), value: "1".into() }),
        ("s * @anyvm @anyvm ask autostart=true", K::NotYesNo { key: "autostart".into(), value: "true".into() }),
        ("s * @anyvm @anyvm deny target=dom0", K::UnknownOption { action: "deny", key: "target".into() }),
        ("s * @anyvm @anyvm deny user=root", K::UnknownOption { action: "deny", key: "user".into() }),
        ("s * @anyvm @anyvm deny autostart=no", K::UnknownOption { action: "deny", key: "autostart".into() }),
        (
            "s * @anyvm @anyvm allow default_target=dom0",
            K::UnknownOption { action: "allow", key: "default_target".into() },
        ),
        ("s * @anyvm @anyvm ask color=red", K::UnknownOption { action: "ask", key: "color".into() }),
        ("s * @anyvm @default allow", K::DefaultWithoutRedirect),
        ("s * @anyvm @default allow user=root", K::DefaultWithoutRedirect),
        ("!include", K::DirectiveParams("!include")),
        ("!include a b", K::DirectiveParams("!include")),
        ("!include-dir", K::DirectiveParams("!include-dir")),
        ("!include-service s +a", K::DirectiveParams("!include-service")),
        ("!compat-4.0 x", K::DirectiveParams("!compat-4.0")),
        ("!includes x", K::UnknownDirective("!includes".into())),
        ("!", K::UnknownDirective("!".into())),
    ];
    for (line, kind) in table {
        let text = format!("# first line\ns * @anyvm @anyvm deny\n{line}\n");
        let err = parse_file("30-x.policy", &text).expect_err(line);
        assert_eq!(err.kind, kind, "{line}");
        assert_eq!(err.origin, Origin { file: "30-x.policy".into(), line: 3 }, "{line}");
        assert!(err.to_string().starts_with("30-x.policy:3: "), "{err}");
    }
}

#[test]
fn rules_that_look_odd_but_are_valid() {
    // `@default` may be asked about, or denied, without a redirect; allow with one is fine.
    rules("s * @anyvm @default ask\ns * @anyvm @default deny\ns * @anyvm @default allow target=dom0");
    // Names are not checked for characters; a source may be `@dispvm:` tokens (they just never match).
    rules("s * weird!name @anyvm deny\ns * @dispvm:@tag:x @anyvm deny\ns * @dispvm:tpl @anyvm deny");
    // Options in any order, `=` inside a value.
    rules("s * @anyvm @anyvm allow user=a=b notify=no target=work");
}

// ---- evaluation ---------------------------------------------------------------------------------------------

fn qube(name: &str, uuid: &str, class: &str, tags: &[&str]) -> Qube {
    Qube {
        name: name.into(),
        uuid: uuid.into(),
        class: class.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        default_dispvm: Some("default-dvm".into()),
        template_for_dispvms: false,
        running: true,
        internal: false,
    }
}

fn system() -> System {
    let mut dom0 = qube("dom0", DOM0_UUID, "AdminVM", &[]);
    dom0.default_dispvm = None;
    let mut dvm = qube("default-dvm", "d1", "AppVM", &["dvm-tag"]);
    dvm.template_for_dispvms = true;
    let mut other_dvm = qube("other-dvm", "d2", "AppVM", &[]);
    other_dvm.template_for_dispvms = true;
    let mut sleeping = qube("sleeping", "s1", "AppVM", &["t"]);
    sleeping.running = false;
    let mut nodvm = qube("nodvm", "n1", "AppVM", &[]);
    nodvm.default_dispvm = None;
    let mut hidden = qube("hidden", "h1", "AppVM", &["t"]);
    hidden.internal = true;
    System {
        qubes: vec![
            dom0,
            qube("work", "w1", "AppVM", &["t"]),
            qube("personal", "p1", "AppVM", &[]),
            qube("fedora", "f1", "TemplateVM", &[]),
            dvm,
            other_dvm,
            sleeping,
            nodvm,
            hidden,
        ],
    }
}

fn req(source: &str, target: &str) -> Request {
    Request { service: "s".into(), argument: "+".into(), source: source.into(), target: target.into() }
}

fn decide(policy: &str, source: &str, target: &str) -> Decision {
    evaluate(&rules(policy), &system(), &req(source, target))
}

fn allowed_to(d: &Decision) -> Option<&str> {
    match d {
        Decision::Allow { target, .. } => Some(target),
        _ => None,
    }
}

fn denied(d: &Decision) -> Option<&DenyReason> {
    match d {
        Decision::Deny { reason, .. } => Some(reason),
        _ => None,
    }
}

#[test]
fn first_match_wins_and_no_match_denies() {
    let p = "s * work personal deny\ns * @anyvm @anyvm allow\ns * work personal allow";
    assert_eq!(
        denied(&decide(p, "work", "personal")),
        Some(&DenyReason::Rule(Origin { file: "test.policy".into(), line: 1 }))
    );
    assert_eq!(allowed_to(&decide(p, "personal", "work")), Some("work"));
    assert_eq!(denied(&decide("s * work personal allow", "personal", "work")), Some(&DenyReason::NoMatchingRule));
    assert_eq!(denied(&decide("", "work", "personal")), Some(&DenyReason::NoMatchingRule));
}

#[test]
fn service_and_argument_match_exactly_or_by_wildcard() {
    let sys = system();
    let r = rules("s +a work personal allow\ns + work personal deny\n* * work fedora allow");
    let mut q = req("work", "personal");
    q.argument = "+a".into();
    assert!(allowed_to(&evaluate(&r, &sys, &q)).is_some());
    q.argument = "+".into();
    assert!(matches!(denied(&evaluate(&r, &sys, &q)), Some(DenyReason::Rule(_))));
    q.argument = "+b".into();
    assert_eq!(denied(&evaluate(&r, &sys, &q)), Some(&DenyReason::NoMatchingRule));
    let mut other = req("work", "fedora");
    other.service = "anything".into();
    other.argument = "+z".into();
    assert_eq!(allowed_to(&evaluate(&r, &sys, &other)), Some("fedora"));
}

#[test]
fn source_tokens() {
    let allow = |src_token: &str, source: &str| {
        allowed_to(&decide(&format!("s * {src_token} personal allow"), source, "personal")).is_some()
    };
    assert!(allow("*", "work") && allow("*", "dom0"));
    assert!(allow("@anyvm", "work") && !allow("@anyvm", "dom0"));
    assert!(allow("@adminvm", "dom0") && !allow("@adminvm", "work"));
    assert!(allow("dom0", "dom0") && allow("uuid:00000000-0000-0000-0000-000000000000", "dom0"));
    assert!(allow("@tag:t", "work") && !allow("@tag:t", "fedora"));
    assert!(allow("@type:TemplateVM", "fedora") && !allow("@type:TemplateVM", "work"));
    assert!(allow("work", "work") && !allow("work", "fedora"));
    assert!(allow("uuid:w1", "work") && allow("work", "uuid:w1") && allow("uuid:w1", "uuid:w1"));
    assert!(!allow("uuid:w1", "fedora"));
    // A caller is never a disposable-to-be.
    assert!(!allow("@dispvm:default-dvm", "default-dvm") && !allow("@dispvm:@tag:dvm-tag", "default-dvm"));
}

#[test]
fn target_tokens() {
    let allow = |tgt_token: &str, target: &str| {
        let p = format!("s * work {tgt_token} allow target=fedora");
        allowed_to(&decide(&p, "work", target)).is_some()
    };
    assert!(allow("*", "personal") && allow("*", "dom0") && allow("*", "") && allow("*", "@dispvm"));
    assert!(allow("@anyvm", "personal") && allow("@anyvm", "@default") && !allow("@anyvm", "dom0"));
    assert!(!allow("@anyvm", "@adminvm"));
    assert!(allow("@adminvm", "dom0") && allow("@adminvm", "@adminvm") && !allow("@adminvm", "personal"));
    assert!(allow("dom0", "@adminvm"));
    assert!(allow("@default", "") && allow("@default", "@default") && !allow("@default", "personal"));
    // An unknown qube is as if no target was named.
    assert!(allow("@default", "no-such-qube") && !allow("no-such-qube", "no-such-qube"));
    assert!(allow("@tag:t", "sleeping") && !allow("@tag:t", "personal"));
    assert!(allow("@type:TemplateVM", "fedora") && !allow("@type:TemplateVM", "personal"));
    assert!(allow("personal", "uuid:p1") && allow("uuid:p1", "personal") && !allow("uuid:p1", "work"));
    // @dispvm matches only @dispvm; @dispvm:X matches @dispvm when X is the caller's default_dispvm.
    assert!(allow("@dispvm", "@dispvm") && !allow("@dispvm", "@dispvm:default-dvm"));
    assert!(allow("@dispvm:default-dvm", "@dispvm") && allow("@dispvm:default-dvm", "@dispvm:default-dvm"));
    assert!(allow("@dispvm:uuid:d1", "@dispvm:default-dvm") && !allow("@dispvm:other-dvm", "@dispvm"));
    assert!(!allow("@dispvm:default-dvm", "default-dvm"));
    assert!(allow("@dispvm:@tag:dvm-tag", "@dispvm") && allow("@dispvm:@tag:dvm-tag", "@dispvm:default-dvm"));
    assert!(!allow("@dispvm:@tag:dvm-tag", "@dispvm:other-dvm") && !allow("@dispvm:@tag:t", "work"));
    // A caller without default_dispvm: @dispvm names no template.
    let p = "s * nodvm @dispvm:@tag:dvm-tag allow\ns * nodvm @dispvm:default-dvm allow";
    assert_eq!(denied(&decide(p, "nodvm", "@dispvm")), Some(&DenyReason::NoMatchingRule));
}

#[test]
fn intended_target_is_checked_first() {
    assert!(matches!(denied(&decide("s * @anyvm * allow", "work", "@anyvm")), Some(DenyReason::BadTarget(_))));
    assert!(matches!(denied(&decide("s * @anyvm * allow", "work", "@tag:t")), Some(DenyReason::BadTarget(_))));
    assert_eq!(
        denied(&decide("s * @anyvm * allow", "work", "@dispvm:personal")),
        Some(&DenyReason::NotDispVmTemplate("personal".into()))
    );
    assert_eq!(
        denied(&decide("s * @anyvm * allow", "work", "@dispvm:nope")),
        Some(&DenyReason::NotDispVmTemplate("nope".into()))
    );
}

#[test]
fn allow_resolves_its_target() {
    let at = |line| Origin { file: "test.policy".into(), line };
    // No target from caller or policy.
    assert_eq!(denied(&decide("s * work * allow", "work", "")), Some(&DenyReason::NoTarget(at(1))));
    assert_eq!(allowed_to(&decide("s * work @default allow target=personal", "work", "")), Some("personal"));
    // Redirects, to a name, dom0, a disposable.
    assert_eq!(allowed_to(&decide("s * work personal allow target=fedora", "work", "personal")), Some("fedora"));
    assert_eq!(allowed_to(&decide("s * work * allow target=@adminvm", "work", "personal")), Some("dom0"));
    assert_eq!(allowed_to(&decide("s * work @adminvm allow", "work", "dom0")), Some("dom0"));
    assert_eq!(allowed_to(&decide("s * work @adminvm allow", "work", "@adminvm")), Some("dom0"));
    assert_eq!(allowed_to(&decide("s * work * allow target=@dispvm", "work", "personal")), Some("@dispvm:default-dvm"));
    assert_eq!(allowed_to(&decide("s * work @dispvm allow", "work", "@dispvm")), Some("@dispvm:default-dvm"));
    assert_eq!(allowed_to(&decide("s * work * allow target=@dispvm:other-dvm", "work", "")), Some("@dispvm:other-dvm"));
    assert_eq!(
        denied(&decide("s * nodvm @dispvm allow", "nodvm", "@dispvm")),
        Some(&DenyReason::NoDefaultDispVm(at(1)))
    );
    // A redirect to a qube that does not exist falls back to @default, which allow cannot use.
    assert_eq!(denied(&decide("s * work * allow target=gone", "work", "personal")), Some(&DenyReason::NoTarget(at(1))));
    assert_eq!(
        denied(&decide("s * work * allow target=@dispvm:personal", "work", "personal")),
        Some(&DenyReason::NotDispVmTemplate("personal".into()))
    );
}

#[test]
fn allow_carries_user_notify_autostart() {
    let d = decide("s * work * allow user=root notify=yes", "work", "personal");
    assert_eq!(
        d,
        Decision::Allow {
            target: "personal".into(),
            user: Some("root".into()),
            autostart: true,
            notify: true,
            origin: Origin { file: "test.policy".into(), line: 1 },
        }
    );
}

#[test]
fn autostart_no_only_reaches_running_qubes_and_dom0() {
    let p = "s * work * allow autostart=no notify=yes";
    assert_eq!(allowed_to(&decide(p, "work", "personal")), Some("personal"));
    assert_eq!(allowed_to(&decide(p, "work", "dom0")), Some("dom0"));
    let d = decide(p, "work", "sleeping");
    assert!(
        matches!(&d, Decision::Deny { reason: DenyReason::WouldAutostart { target, .. }, notify: true } if target == "sleeping")
    );
    assert!(matches!(denied(&decide(p, "work", "@dispvm")), Some(DenyReason::WouldAutostart { .. })));
    // An ask without autostart offers only what can be called without starting it.
    let d = decide("s * work @tag:t ask autostart=no", "work", "sleeping");
    assert_eq!(denied(&d), Some(&DenyReason::NothingToAsk(Origin { file: "test.policy".into(), line: 1 })));
}

#[test]
fn deny_notifies_unless_told_not_to() {
    assert!(matches!(decide("s * work * deny", "work", "personal"), Decision::Deny { notify: true, .. }));
    assert!(matches!(decide("s * work * deny notify=no", "work", "personal"), Decision::Deny { notify: false, .. }));
}

fn ask_targets(d: &Decision) -> (Vec<String>, Option<String>) {
    match d {
        Decision::Ask { targets, default_target, .. } => (targets.clone(), default_target.clone()),
        other => panic!("expected ask, got {other:?}"),
    }
}

#[test]
fn ask_offers_what_the_rules_for_the_call_allow() {
    // Choices come from every rule for this service and source, earlier denies removing later offers;
    // the caller itself and internal qubes are never offered; @dispvm becomes the caller's template.
    let p = "s * work personal deny\n\
             s * work @default ask\n\
             s * work @anyvm allow\n\
             s * work @dispvm:@tag:dvm-tag allow\n\
             s * other @anyvm allow";
    let (targets, default) = ask_targets(&decide(p, "work", ""));
    assert_eq!(
        targets,
        ["@dispvm:default-dvm", "@dispvm:other-dvm", "default-dvm", "fedora", "nodvm", "other-dvm", "sleeping"]
    );
    assert_eq!(default, None);
    // @adminvm / * include dom0, offered as dom0.
    let (targets, _) = ask_targets(&decide("s * work @default ask\ns * work @adminvm allow", "work", ""));
    assert_eq!(targets, ["dom0"]);
    // Redirects count as what a rule offers.
    let (targets, _) = ask_targets(&decide("s * work @default ask\ns * work @tag:x allow target=fedora", "work", ""));
    assert_eq!(targets, ["fedora"]);
    let (targets, _) = ask_targets(&decide("s * work @default ask\ns * work * allow target=@dispvm", "work", ""));
    assert_eq!(targets, ["@dispvm:default-dvm"]);
}

#[test]
fn ask_with_a_redirect_offers_only_it_and_default_target_must_be_offered() {
    let (t, d) = ask_targets(&decide("s * work * ask target=@adminvm default_target=dom0", "work", "personal"));
    assert_eq!((t, d.as_deref()), (vec!["dom0".to_owned()], Some("dom0")));
    let (t, d) = ask_targets(&decide("s * work * ask target=fedora default_target=personal", "work", "personal"));
    assert_eq!((t, d), (vec!["fedora".to_owned()], None));
    let p = "s * work * ask default_target=@dispvm\ns * work @dispvm allow";
    let (_, d) = ask_targets(&decide(p, "work", "personal"));
    assert_eq!(d.as_deref(), Some("@dispvm:default-dvm"));
    let p = "s * work * ask default_target=personal\ns * work @type:AppVM allow";
    let (t, d) = ask_targets(&decide(p, "work", "personal"));
    assert!(t.iter().any(|x| x == "personal"));
    assert_eq!(d.as_deref(), Some("personal"));
    // The ask rule offers its own target too; the caller is never offered, so this leaves nothing, which denies.
    let (t, _) = ask_targets(&decide("s * work * ask", "work", "personal"));
    assert!(t.iter().any(|x| x == "personal"));
    assert!(matches!(
        denied(&decide("s * personal personal ask", "personal", "personal")),
        Some(DenyReason::NothingToAsk(_))
    ));
}

#[test]
fn ask_without_anyone_to_ask() {
    let p = "s * work * ask user=u notify=yes\ns * work @tag:t allow";
    let d = decide(p, "work", "sleeping");
    assert!(matches!(d.clone().resolve_ask(false), Decision::Deny { reason: DenyReason::NotAsked(_), .. }));
    assert_eq!(
        d.resolve_ask(true),
        Decision::Allow {
            target: "sleeping".into(),
            user: Some("u".into()),
            autostart: true,
            notify: true,
            origin: Origin { file: "test.policy".into(), line: 1 },
        }
    );
    // Assuming yes still needs the intended target to be among the choices.
    let p = "s * work * ask target=fedora";
    let d = decide(p, "work", "personal");
    assert!(matches!(d.resolve_ask(true), Decision::Deny { reason: DenyReason::NotAChoice { .. }, .. }));
    let d = decide(p, "work", "");
    assert!(matches!(d.resolve_ask(true), Decision::Deny { reason: DenyReason::NotAChoice { .. }, .. }));
    // Other decisions pass through.
    let allow = decide("s * work * allow", "work", "personal");
    assert_eq!(allow.clone().resolve_ask(false), allow);
}

#[test]
fn include_service_checks_its_service_and_argument() {
    let err = parse_file("f", "!include-service s+x * path").expect_err("bad service");
    assert_eq!(err.kind, SyntaxErrorKind::BadService("s+x".into()));
    let err = parse_file("f", "!include-service * +a path").expect_err("argument for every service");
    assert_eq!(err.kind, SyntaxErrorKind::ArgumentForWildcardService);
    let err = parse_file("f", "!include-service s a path").expect_err("argument without +");
    assert_eq!(err.kind, SyntaxErrorKind::ArgumentWithoutPlus("a".into()));
}

#[test]
fn policy_file_names() {
    let names = ["50-b.policy", "README", ".hidden.policy", "10-a.policy", "x.policy.bak", "30_c.d.policy"];
    assert_eq!(policy_files(names), Ok(vec!["10-a.policy", "30_c.d.policy", "50-b.policy"]));
    // One misnamed policy file refuses the whole directory, whatever else is there.
    for bad in ["Upper.policy", "a b.policy", "é.policy", "a+b.policy"] {
        assert_eq!(policy_files(["10-a.policy", bad]), Err(BadFileName(bad.into())), "{bad}");
    }
    // Ignored names are not checked.
    assert!(policy_files(["Upper.txt", ".Hidden.policy"]).is_ok_and(|f| f.is_empty()));
}

#[test]
fn policy_dirs_merge_by_name_first_dir_wins() {
    let runtime = vec!["50-x.policy", "20-r.policy"];
    let etc = vec!["50-x.policy", "90-admin-default.policy", "10-e.policy"];
    assert_eq!(
        merge_policy_dirs(&[runtime, etc]),
        Ok(vec![(1, "10-e.policy"), (0, "20-r.policy"), (0, "50-x.policy"), (1, "90-admin-default.policy")])
    );
    assert!(merge_policy_dirs(&[vec!["ok.policy"], vec!["Bad.policy"]]).is_err());
}

// ---- loading ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Files {
    files: Vec<(&'static str, &'static str)>,
    dirs: Vec<(&'static str, Vec<&'static str>)>,
    compat: Vec<(String, String, String, String)>,
}

impl PolicyFiles for Files {
    fn file(&self, path: &str) -> Option<(String, String)> {
        self.files.iter().find(|(p, _)| *p == path).map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
    }
    fn dir(&self, path: &str) -> Option<Vec<String>> {
        self.dirs.iter().find(|(p, _)| *p == path).map(|(_, n)| n.iter().map(|s| (*s).to_owned()).collect())
    }
    fn compat40(&self) -> Vec<(String, String, String, String)> {
        self.compat.clone()
    }
}

fn summary(rules: &[Rule]) -> Vec<String> {
    rules.iter().map(|r| format!("{} {}", r.origin, r.service.as_deref().unwrap_or("*"))).collect()
}

#[test]
fn load_follows_directives_in_place() {
    let files = Files {
        files: vec![
            ("inc/a", "a * @anyvm @anyvm deny\n!include inc/b\n"),
            ("inc/b", "b * @anyvm @anyvm deny\n"),
            ("d/20-y.policy", "y * @anyvm @anyvm deny\n"),
            ("d/10-x.policy", "x * @anyvm @anyvm deny\n"),
            ("inc/old", "$anyvm $anyvm allow\n$include:inc/old2\n"),
            ("inc/old2", "work dom0 deny\n"),
        ],
        dirs: vec![("d", vec!["20-y.policy", "notes.txt", "10-x.policy"])],
        compat: vec![("c".into(), "*".into(), "qubes-rpc/c".into(), "@anyvm @anyvm ask\n".into())],
    };
    let top = "t * @anyvm @anyvm deny\n!include inc/a\n!include-dir d\n!include-service svc +arg inc/old\n!compat-4.0\nz * @anyvm @anyvm deny\n";
    let rules = load(&files, "50-top.policy", top).expect("loads");
    assert_eq!(
        summary(&rules),
        [
            "50-top.policy:1 t",
            "inc/a:1 a",
            "inc/b:1 b",
            "d/10-x.policy:1 x",
            "d/20-y.policy:1 y",
            "inc/old:1 svc",
            "inc/old2:1 svc",
            "qubes-rpc/c:1 c",
            "50-top.policy:6 z",
        ]
    );
    assert_eq!(rules[5].argument.as_deref(), Some("+arg"));
}

#[test]
fn load_errors_say_where() {
    let at = |file: &str, line| Origin { file: file.into(), line };
    let files = Files {
        files: vec![("bad", "s * @anyvm @anyvm maybe\n"), ("loop", "!include loop\n")],
        dirs: vec![("misnamed", vec!["10-ok.policy", "20-Bad.policy"])],
        ..Files::default()
    };
    let err = load(&files, "top", "\n!include missing").expect_err("no file");
    assert_eq!(err, LoadError::NotAFile { origin: at("top", 2), path: "missing".into() });
    let err = load(&files, "top", "!include-dir nodir").expect_err("no dir");
    assert_eq!(err, LoadError::NotADirectory { origin: at("top", 1), path: "nodir".into() });
    let err = load(&files, "top", "!include-dir misnamed").expect_err("bad name");
    assert!(matches!(err, LoadError::BadFileName { .. }));
    let err = load(&files, "top", "!include bad").expect_err("syntax");
    assert_eq!(err.to_string(), "bad:1: unknown action \"maybe\"");
    let err = load(&files, "top", "!include loop").expect_err("loop");
    assert_eq!(err, LoadError::TooDeep { origin: at("loop", 1) });
    // !compat-4.0 with no old files adds nothing.
    assert_eq!(load(&files, "top", "!compat-4.0").expect("loads"), vec![]);
}

#[test]
fn target_matching_of_dom0_and_uuids() {
    let allow = |tgt_token: &str, target: &str| {
        let p = format!("s * work {tgt_token} allow target=fedora");
        allowed_to(&decide(&p, "work", target)).is_some()
    };
    let dom0_uuid = "uuid:00000000-0000-0000-0000-000000000000";
    assert!(allow(dom0_uuid, "@adminvm") && allow(dom0_uuid, "dom0") && !allow(dom0_uuid, "personal"));
    assert!(allow("@adminvm", dom0_uuid) && !allow("personal", dom0_uuid) && !allow("@anyvm", dom0_uuid));
    // Class and tags are dom0's only when it is named, not as @adminvm.
    assert!(allow("@type:AdminVM", "dom0") && !allow("@type:AdminVM", "@adminvm"));
    assert!(allow("@dispvm:uuid:d1", "@dispvm:uuid:d1") && allow("@dispvm:default-dvm", "@dispvm:uuid:d1"));
    assert!(allow("uuid:d1", "default-dvm") && !allow("@dispvm", "default-dvm"));
    assert!(allow("@anyvm", "@dispvm:default-dvm") && allow("@anyvm", "@dispvm"));
}

#[test]
fn dom0_redirects_keep_their_spelling_in_allow_and_become_dom0_in_ask() {
    let dom0_uuid = "uuid:00000000-0000-0000-0000-000000000000";
    // allow: only @adminvm is rewritten; a name or UUID redirect is passed on as written.
    assert_eq!(
        allowed_to(&decide(&format!("s * work * allow target={dom0_uuid}"), "work", "personal")),
        Some(dom0_uuid)
    );
    assert_eq!(allowed_to(&decide("s * work * allow target=uuid:p1", "work", "fedora")), Some("uuid:p1"));
    // ask: every spelling of dom0 offers and preselects dom0.
    for target in ["dom0", "@adminvm", dom0_uuid] {
        for default in ["dom0", "@adminvm", dom0_uuid] {
            let p = format!("s * work @default ask target={target} default_target={default}");
            let (t, d) = ask_targets(&decide(&p, "work", ""));
            assert_eq!((t, d.as_deref()), (vec!["dom0".to_owned()], Some("dom0")), "{p}");
        }
    }
}

#[test]
fn a_caller_named_by_uuid_is_never_offered_to_itself() {
    let (t, _) = ask_targets(&decide("s * uuid:w1 * ask\ns * work @tag:t allow", "uuid:w1", "personal"));
    assert!(!t.iter().any(|x| x == "work" || x == "uuid:w1"), "{t:?}");
    assert!(t.iter().any(|x| x == "sleeping") && !t.iter().any(|x| x == "hidden"));
}

#[test]
fn ask_answered_by_the_user() {
    let p = "s * work @tag:t ask user=u notify=yes";
    let at = Origin { file: "test.policy".into(), line: 1 };
    let d = decide(p, "work", "sleeping");
    assert_eq!(d.clone().answer(None), Decision::Deny { reason: DenyReason::RefusedByUser(at.clone()), notify: true });
    let quiet = decide("s * work @tag:t ask", "work", "sleeping").answer(None);
    assert!(matches!(quiet, Decision::Deny { reason: DenyReason::RefusedByUser(_), notify: false }));
    // The user may pick another offered target than the one intended, but nothing outside the choices.
    assert_eq!(d.clone().answer(Some("sleeping")), d.clone().resolve_ask(true));
    assert!(matches!(
        d.clone().answer(Some("personal")),
        Decision::Deny { reason: DenyReason::NotAChoice { .. }, notify: true }
    ));
    let p = "s * work @default ask\ns * work @dispvm allow\ns * work fedora allow";
    let d = decide(p, "work", "");
    assert_eq!(
        d.answer(Some("@dispvm:default-dvm")),
        Decision::Allow {
            target: "@dispvm:default-dvm".into(),
            user: None,
            autostart: true,
            notify: false,
            origin: at,
        }
    );
}

#[test]
fn old_format_syntax_errors() {
    use SyntaxErrorKind as K;
    let inv = |place, t: &str| K::Token(TokenError::Invalid { place, token: t.into() });
    let table: Vec<(&str, SyntaxErrorKind)> = vec![
        ("$dispvm $default allow", inv(Place::Source, "@dispvm")),
        ("$anyvm $default allow,target=$dispvm:$tag:t", inv(Place::Redirect, "@dispvm:@tag:t")),
        ("$anyvm $default allow,target=$tag:t", inv(Place::Redirect, "@tag:t")),
        ("$anyvm $anyvm deny,target=work", K::UnknownOption { action: "deny", key: "target".into() }),
        ("$anyvm $anyvm deny,default_target=work", K::UnknownOption { action: "deny", key: "default_target".into() }),
        ("$anyvm $anyvm invalid", K::UnknownAction("invalid".into())),
        ("$anyvm $anyvm allow,invalid=xx", K::UnknownOption { action: "allow", key: "invalid".into() }),
        ("$anyvm $anyvm", K::WrongNumberOfFields),
        ("$anyvm $anyvm allow extra", K::OptionSyntax("extra".into())),
        ("$anyvm $default allow", K::DefaultWithoutRedirect),
        ("$anyvm $anyvm allow,notify=xx", K::NotYesNo { key: "notify".into(), value: "xx".into() }),
    ];
    for (line, kind) in table {
        let err = parse_service_file("test.Service", "+argument", "old", &format!("\n{line}")).expect_err(line);
        assert_eq!((err.kind, err.origin.line), (kind, 2), "{line}");
    }
    let err = parse_file("new", "s +a @anyvm @anyvm allow extra").expect_err("trailing word");
    assert_eq!(err.kind, K::OptionSyntax("extra".into()));
}

#[test]
fn ask_redirected_to_dispvm_offers_the_callers_template() {
    let (t, d) = ask_targets(&decide("s * work * ask target=@dispvm default_target=@dispvm", "work", "personal"));
    assert_eq!((t, d.as_deref()), (vec!["@dispvm:default-dvm".to_owned()], Some("@dispvm:default-dvm")));
    assert!(matches!(
        denied(&decide("s * nodvm * ask target=@dispvm", "nodvm", "personal")),
        Some(DenyReason::NothingToAsk(_))
    ));
}

#[test]
fn a_request_argument_must_start_with_plus() {
    let mut q = req("work", "personal");
    q.argument = "x".into();
    let d = evaluate(&rules("* * @anyvm @anyvm allow"), &system(), &q);
    assert_eq!(denied(&d), Some(&DenyReason::BadArgument("x".into())));
}
