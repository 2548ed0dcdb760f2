/*
 * test_authcfg.c — the AuthenticationConfiguration parser and validator, table-driven.
 *
 * Every bad document names the verdict it expects (the authcfg_err) and the error text it must produce: for a
 * single error the whole line as the API server prints it (field path, error type, quoted value, detail), for
 * several the parts. Good documents are checked field by field, in YAML and in JSON, and the Kubernetes
 * documentation's examples (tests/fixtures/authcfg/k8s-docs-*.yaml) load or fail as the API server says.
 * Runs from the repository root (tests/run_all.py sets cwd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "authcfg.h"

#define FIX "tests/fixtures/authcfg/"
#define V1 "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"
#define V1B "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\n"
/* one authenticator: ISS_OPEN + issuer fields + ISS_REST(mapping and the rest) */
#define ISS_OPEN "jwt:\n- issuer:\n"
#define URL_A "    url: https://a.example\n"
#define AUD_A "    audiences: [a]\n"
#define USER_SUB "  claimMappings:\n    username: {claim: sub, prefix: \"\"}\n"
#define MIN V1 ISS_OPEN URL_A AUD_A USER_SUB

typedef struct acase {
	const char *name;
	const char *doc;
	int rc;
	bool exact;          /* has[0] is the whole error line */
	const char *has[4];  /* substrings the error must contain (all of them) */
} acase;

static const acase cases[] = {
	/* ---- good ---- */
	{"minimal v1", MIN, AUTHCFG_OK, false, {NULL}},
	{"minimal v1beta1", V1B ISS_OPEN URL_A AUD_A USER_SUB, AUTHCFG_OK, false, {NULL}},
	{"no authenticators (allowed by the API server)", V1 "jwt: []\n", AUTHCFG_OK, false, {NULL}},
	{"jwt null", V1 "jwt:\n", AUTHCFG_OK, false, {NULL}},
	{"leading --- and comments, trailing ...", "# c\n---\n" MIN "# end\n...\n", AUTHCFG_OK, false, {NULL}},
	{"anchors without aliases are harmless", V1 ISS_OPEN "    url: &u https://a.example\n" AUD_A USER_SUB,
	 AUTHCFG_OK, false, {NULL}},
	{"!!str makes a number a string", V1 ISS_OPEN URL_A "    audiences: [!!str 123]\n" USER_SUB, AUTHCFG_OK, false,
	 {NULL}},
	{"quoted yes is a string", V1 ISS_OPEN URL_A "    audiences: [\"yes\", 'no']\n    audienceMatchPolicy: MatchAny\n"
	 USER_SUB, AUTHCFG_OK, false, {NULL}},
	{"1.2.3 is a string", V1 ISS_OPEN URL_A "    audiences: [1.2.3]\n" USER_SUB, AUTHCFG_OK, false, {NULL}},
	{"url with port and path", V1 ISS_OPEN "    url: https://a.example:8443/realms/x\n" AUD_A USER_SUB, AUTHCFG_OK,
	 false, {NULL}},
	{"url with IPv6 host", V1 ISS_OPEN "    url: https://[::1]:8443\n" AUD_A USER_SUB, AUTHCFG_OK, false, {NULL}},
	{"bare ? and # leave query and fragment empty (as Go)", V1 ISS_OPEN "    url: https://a.example/?#\n" AUD_A USER_SUB,
	 AUTHCFG_OK, false, {NULL}},
	{"single audience with MatchAny", V1 ISS_OPEN URL_A AUD_A "    audienceMatchPolicy: MatchAny\n" USER_SUB,
	 AUTHCFG_OK, false, {NULL}},
	{"prefix null is unset but the empty string is set", V1 ISS_OPEN URL_A AUD_A
	 "  claimMappings:\n    username: {expression: claims.sub, prefix: null}\n", AUTHCFG_OK, false, {NULL}},
	{"extra key not under k8s.io", MIN "    extra:\n    - {key: notk8s.io/x, valueExpression: claims.x}\n"
	 "    - {key: k8s.io.example.com/y, valueExpression: claims.y}\n", AUTHCFG_OK, false, {NULL}},
	{"extra path characters", MIN "    extra:\n    - {key: 'example.com/a-._~%!$&()*+,;=:/b', valueExpression: x}\n",
	 AUTHCFG_OK, false, {NULL}},
	{"the same claim rule expression in two authenticators", V1 ISS_OPEN URL_A AUD_A
	 "  claimValidationRules: [{expression: 'true'}]\n" USER_SUB
	 "- issuer: {url: https://b.example, audiences: [a]}\n  claimValidationRules: [{expression: 'true'}]\n"
	 "  claimMappings: {username: {expression: claims.sub}}\n", AUTHCFG_OK, false, {NULL}},

	/* ---- issuer.url ---- */
	{"http issuer", V1 ISS_OPEN "    url: http://a.example\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"http://a.example\": URL scheme must be https"}},
	{"missing url", V1 ISS_OPEN AUD_A USER_SUB, AUTHCFG_E_INVALID, true, {"jwt[0].issuer.url: Required value"}},
	{"empty url", V1 ISS_OPEN "    url: ''\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Required value"}},
	{"url with a query", V1 ISS_OPEN "    url: https://a.example/?x=1\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"https://a.example/?x=1\": URL must not contain a query"}},
	{"url with a fragment", V1 ISS_OPEN "    url: https://a.example/#f\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"https://a.example/#f\": URL must not contain a fragment"}},
	{"url with user info", V1 ISS_OPEN "    url: https://u:p@a.example\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"https://u:p@a.example\": URL must not contain a username or password"}},
	{"url with user, query and fragment: three errors", V1 ISS_OPEN "    url: https://u@a.example/?q#f\n" AUD_A
	 USER_SUB, AUTHCFG_E_INVALID, false,
	 {"[jwt[0].issuer.url: Invalid value: \"https://u@a.example/?q#f\": URL must not contain a username or password, ",
	  "URL must not contain a query, ", "URL must not contain a fragment]"}},
	{"url without host (ours)", V1 ISS_OPEN "    url: https://\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"https://\": URL must have a host"}},
	{"HTTPS in capitals (ours: Go lowercases the scheme, the iss comparison does not)",
	 V1 ISS_OPEN "    url: HTTPS://a.example\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, false, {"URL scheme must be https"}},
	{"url with a control character", V1 ISS_OPEN "    url: \"https://a.example/\\x01\"\n" AUD_A USER_SUB,
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"https://a.example/\\x01\": parse \"https://a.example/\\x01\": net/url: "
	  "invalid control character in URL"}},
	{"url with a bad escape", V1 ISS_OPEN "    url: https://a.example/%zz\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, false,
	 {"invalid URL escape \"%zz\""}},
	{"url with a bad port", V1 ISS_OPEN "    url: https://a.example:x1\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, false,
	 {"jwt[0].issuer.url: Invalid value: \"https://a.example:x1\": parse", "invalid host or port"}},
	{"url with a space", V1 ISS_OPEN "    url: https://a.example/a b\n" AUD_A USER_SUB, AUTHCFG_E_INVALID, false,
	 {"printable ASCII without spaces"}},
	{"duplicate issuer", V1 ISS_OPEN URL_A AUD_A USER_SUB "- issuer: {url: https://a.example, audiences: [b]}\n"
	 "  claimMappings: {username: {expression: claims.sub}}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[1].issuer.url: Duplicate value: \"https://a.example\""}},
	/* ---- issuer.discoveryURL ---- */
	{"discoveryURL equal to url but for a slash", V1 ISS_OPEN URL_A "    discoveryURL: https://a.example/\n" AUD_A
	 USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.discoveryURL: Invalid value: \"https://a.example/\": discoveryURL must be different from URL"}},
	{"http discoveryURL", V1 ISS_OPEN URL_A "    discoveryURL: http://d.example/x\n" AUD_A USER_SUB,
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.discoveryURL: Invalid value: \"http://d.example/x\": URL scheme must be https"}},
	{"duplicate discoveryURL", V1 ISS_OPEN URL_A "    discoveryURL: https://d.example/x\n" AUD_A USER_SUB
	 "- issuer: {url: https://b.example, discoveryURL: https://d.example/x, audiences: [b]}\n"
	 "  claimMappings: {username: {expression: claims.sub}}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[1].issuer.discoveryURL: Duplicate value: \"https://d.example/x\""}},
	/* ---- issuer.audiences ---- */
	{"no audiences", V1 ISS_OPEN URL_A USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audiences: Required value: at least one jwt[0].issuer.audiences is required"}},
	{"empty audience", V1 ISS_OPEN URL_A "    audiences: ['']\n" USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audiences[0]: Required value"}},
	{"null audience", V1 ISS_OPEN URL_A "    audiences: [~]\n" USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audiences[0]: Required value"}},
	{"duplicate audience", V1 ISS_OPEN URL_A "    audiences: [a, a]\n    audienceMatchPolicy: MatchAny\n" USER_SUB,
	 AUTHCFG_E_INVALID, true, {"jwt[0].issuer.audiences[1]: Duplicate value: \"a\""}},
	{"two audiences without MatchAny", V1 ISS_OPEN URL_A "    audiences: [a, b]\n" USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audienceMatchPolicy: Invalid value: \"\": audienceMatchPolicy must be MatchAny for multiple "
	  "audiences"}},
	{"one audience with another policy", V1 ISS_OPEN URL_A AUD_A "    audienceMatchPolicy: MatchAll\n" USER_SUB,
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audienceMatchPolicy: Invalid value: \"MatchAll\": audienceMatchPolicy must be empty or MatchAny "
	  "for single audience"}},
	{"65 audiences (ours)", NULL, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.audiences: Too many: 65: must have at most 64 items"}},
	/* ---- issuer.certificateAuthority, egressSelectorType; anonymous ---- */
	{"CA that is not PEM", V1 ISS_OPEN URL_A AUD_A "    certificateAuthority: not a certificate\n" USER_SUB,
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.certificateAuthority: Invalid value: \"<omitted>\": data does not contain any valid RSA or "
	  "ECDSA certificates"}},
	{"CA with a broken certificate", V1 ISS_OPEN URL_A AUD_A
	 "    certificateAuthority: |\n      -----BEGIN CERTIFICATE-----\n      AAAA\n      -----END CERTIFICATE-----\n"
	 USER_SUB, AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.certificateAuthority: Invalid value: \"<omitted>\": x509: malformed certificate"}},
	{"egressSelectorType", V1 ISS_OPEN URL_A AUD_A "    egressSelectorType: cluster\n" USER_SUB, AUTHCFG_E_INVALID,
	 true, {"jwt[0].issuer.egressSelectorType: Forbidden: egress selection is not supported by kube-oidc-spoa"}},
	{"anonymous", MIN "anonymous:\n  enabled: true\n", AUTHCFG_E_INVALID, false,
	 {"anonymous: Forbidden: anonymous authentication is not supported by kube-oidc-spoa"}},
	/* ---- claimValidationRules ---- */
	{"rule with claim and expression", MIN "  claimValidationRules:\n  - {claim: hd, expression: 'true'}\n",
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimValidationRules[0]: Invalid value: \"hd\": claim and expression can't both be set"}},
	{"rule with neither", MIN "  claimValidationRules:\n  - {message: m}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimValidationRules[0]: Required value: claim or expression is required"}},
	{"rule with claim and message", MIN "  claimValidationRules:\n  - {claim: hd, message: m}\n", AUTHCFG_E_INVALID,
	 true, {"jwt[0].claimValidationRules[0].message: Invalid value: \"m\": may not be specified when claim is set"}},
	{"duplicate claim rule", MIN "  claimValidationRules:\n  - {claim: hd, requiredValue: a}\n"
	 "  - {claim: hd, requiredValue: b}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimValidationRules[1].claim: Duplicate value: \"hd\""}},
	{"rule with expression and requiredValue", MIN "  claimValidationRules:\n  - {expression: 'true', requiredValue: x}\n",
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimValidationRules[0].requiredValue: Invalid value: \"x\": may not be specified when expression is set"}},
	{"duplicate rule expression", MIN "  claimValidationRules:\n  - {expression: 'true'}\n  - {expression: 'true'}\n",
	 AUTHCFG_E_INVALID, true, {"jwt[0].claimValidationRules[1].expression: Duplicate value: \"true\""}},
	/* ---- claimMappings ---- */
	{"no username mapping", V1 ISS_OPEN URL_A AUD_A, AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.username: Required value: claim or expression is required"}},
	{"username claim without prefix", V1 ISS_OPEN URL_A AUD_A "  claimMappings:\n    username: {claim: sub}\n",
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.username.prefix: Required value: prefix is required when claim is set. It can be set to "
	  "an empty string to disable prefixing"}},
	{"username claim with prefix null", V1 ISS_OPEN URL_A AUD_A
	 "  claimMappings:\n    username: {claim: sub, prefix: null}\n", AUTHCFG_E_INVALID, false,
	 {"jwt[0].claimMappings.username.prefix: Required value"}},
	{"username claim and expression", V1 ISS_OPEN URL_A AUD_A
	 "  claimMappings:\n    username: {claim: sub, prefix: '', expression: claims.sub}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.username: Invalid value: \"\": claim and expression can't both be set"}},
	{"username expression with prefix", V1 ISS_OPEN URL_A AUD_A
	 "  claimMappings:\n    username: {expression: claims.sub, prefix: 'p:'}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.username.prefix: Invalid value: \"p:\": may not be specified when expression is set"}},
	{"groups claim without prefix", MIN "    groups: {claim: groups}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.groups.prefix: Required value: prefix is required when claim is set. It can be set to "
	  "an empty string to disable prefixing"}},
	{"uid claim and expression", MIN "    uid: {claim: sub, expression: claims.sub}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.uid: Invalid value: \"\": claim and expression can't both be set"}},
	{"extra key without domain", MIN "    extra:\n    - {key: foo, valueExpression: x}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.extra[0].key: Invalid value: \"foo\": must be a domain-prefixed path (such as "
	  "\"acme.io/foo\")"}},
	{"extra key with upper-case domain", MIN "    extra:\n    - {key: Example.com/x, valueExpression: x}\n",
	 AUTHCFG_E_INVALID, false,
	 {"[jwt[0].claimMappings.extra[0].key: Invalid value: \"Example.com\": a lowercase RFC 1123 subdomain must "
	  "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
	  "character (e.g. 'example.com', regex used for validation is "
	  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
	  ", jwt[0].claimMappings.extra[0].key: Invalid value: \"Example.com/x\": must be lowercase]"}},
	{"extra key with upper-case path", MIN "    extra:\n    - {key: example.com/Foo, valueExpression: x}\n",
	 AUTHCFG_E_INVALID, true, {"jwt[0].claimMappings.extra[0].key: Invalid value: \"example.com/Foo\": must be lowercase"}},
	{"extra key with a bad path", MIN "    extra:\n    - {key: 'example.com/a b', valueExpression: x}\n",
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.extra[0].key: Invalid value: \"a b\": Invalid path (regex used for validation is "
	  "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"}},
	{"extra key under kubernetes.io", MIN "    extra:\n    - {key: kubernetes.io/x, valueExpression: x}\n",
	 AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.extra[0].key: Invalid value: \"kubernetes.io/x\": k8s.io, kubernetes.io and their "
	  "subdomains are reserved for Kubernetes use"}},
	{"extra key under a k8s.io subdomain", MIN "    extra:\n    - {key: authentication.k8s.io/x, valueExpression: x}\n",
	 AUTHCFG_E_INVALID, false, {"\"authentication.k8s.io/x\": k8s.io, kubernetes.io and their subdomains are reserved"}},
	{"duplicate extra key", MIN "    extra:\n    - {key: a.io/x, valueExpression: x}\n    - {key: a.io/x, valueExpression: w}\n",
	 AUTHCFG_E_INVALID, true, {"jwt[0].claimMappings.extra[1].key: Duplicate value: \"a.io/x\""}},
	{"extra without valueExpression", MIN "    extra:\n    - {key: a.io/x}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.extra[0].valueExpression: Required value"}},
	{"extra without key", MIN "    extra:\n    - {valueExpression: x}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].claimMappings.extra[0].key: Required value"}},
	/* ---- userValidationRules ---- */
	{"user rule without expression", MIN "  userValidationRules:\n  - {message: m}\n", AUTHCFG_E_INVALID, true,
	 {"jwt[0].userValidationRules[0].expression: Required value"}},
	{"duplicate user rule", MIN "  userValidationRules:\n  - {expression: 'true'}\n  - {expression: 'true', message: m}\n",
	 AUTHCFG_E_INVALID, true, {"jwt[0].userValidationRules[1].expression: Duplicate value: \"true\""}},
	/* ---- counts ---- */
	{"a null authenticator is a zero value (as Go decodes null)", V1 "jwt:\n- null\n", AUTHCFG_E_INVALID, true,
	 {"[jwt[0].issuer.url: Required value, jwt[0].issuer.audiences: Required value: at least one "
	  "jwt[0].issuer.audiences is required, jwt[0].claimMappings.username: Required value: claim or expression is "
	  "required]"}},
	{"65 authenticators", NULL, AUTHCFG_E_INVALID, true, {"jwt: Too many: 65: must have at most 64 items"}},
	{"64 authenticators", NULL, AUTHCFG_OK, false, {NULL}},
	{"errors from two authenticators, in order", V1 "jwt:\n- issuer: {url: http://a}\n"
	 "  claimMappings: {username: {claim: sub}}\n- issuer: {url: http://a, audiences: [x]}\n"
	 "  claimMappings: {username: {claim: sub, prefix: ''}}\n", AUTHCFG_E_INVALID, true,
	 {"[jwt[0].issuer.url: Invalid value: \"http://a\": URL scheme must be https, jwt[0].issuer.audiences: Required "
	  "value: at least one jwt[0].issuer.audiences is required, jwt[0].claimMappings.username.prefix: Required "
	  "value: prefix is required when claim is set. It can be set to an empty string to disable prefixing, "
	  "jwt[1].issuer.url: Invalid value: \"http://a\": URL scheme must be https, jwt[1].issuer.url: Duplicate value: "
	  "\"http://a\"]"}},

	/* ---- strict decoding ---- */
	{"unknown top-level field", MIN "metadata: {name: x}\n", AUTHCFG_E_DECODE, true,
	 {"strict decoding error: unknown field \"metadata\" (line 9)"}},
	{"unknown issuer field", V1 ISS_OPEN URL_A AUD_A "    urls: [x]\n" USER_SUB, AUTHCFG_E_DECODE, true,
	 {"strict decoding error: unknown field \"jwt[0].issuer.urls\" (line 7)"}},
	{"unknown field whose value starts on the next line: the key's line", V1 "jwt:\n- issuers:\n    url: x\n",
	 AUTHCFG_E_DECODE, true, {"strict decoding error: unknown field \"jwt[0].issuers\" (line 4)"}},
	{"field names are case-sensitive", V1 ISS_OPEN "    URL: https://a.example\n" AUD_A USER_SUB, AUTHCFG_E_DECODE,
	 false, {"unknown field \"jwt[0].issuer.URL\""}},
	{"uid has no prefix", MIN "    uid: {claim: sub, prefix: ''}\n", AUTHCFG_E_DECODE, false,
	 {"unknown field \"jwt[0].claimMappings.uid.prefix\""}},
	{"duplicate YAML key", V1 ISS_OPEN URL_A URL_A AUD_A USER_SUB, AUTHCFG_E_DECODE, true,
	 {"strict decoding error: duplicate field \"jwt[0].issuer.url\" (line 6)"}},
	{"duplicate top-level key", MIN "kind: AuthenticationConfiguration\n", AUTHCFG_E_DECODE, false,
	 {"duplicate field \"kind\""}},
	{"number where a string goes", V1 ISS_OPEN "    url: 123\n" AUD_A USER_SUB, AUTHCFG_E_DECODE, true,
	 {"cannot unmarshal number into field \"jwt[0].issuer.url\" of type string (line 5)"}},
	{"YAML 1.1 yes is a bool", MIN "  claimValidationRules:\n  - {claim: hd, requiredValue: yes}\n", AUTHCFG_E_DECODE,
	 false, {"cannot unmarshal bool into field \"jwt[0].claimValidationRules[0].requiredValue\" of type string"}},
	{"YAML 1.1 on is a bool", V1 ISS_OPEN URL_A "    audiences: [on]\n" USER_SUB, AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal bool into field \"jwt[0].issuer.audiences[0]\""}},
	{"hex is a number", V1 ISS_OPEN URL_A "    audiences: [0x1F]\n" USER_SUB, AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal number"}},
	{"1_000 is a number", V1 ISS_OPEN URL_A "    audiences: [1_000]\n" USER_SUB, AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal number"}},
	{".inf is a number", V1 ISS_OPEN URL_A "    audiences: [.inf]\n" USER_SUB, AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal number"}},
	{"a string where a list goes", V1 ISS_OPEN URL_A "    audiences: a\n" USER_SUB, AUTHCFG_E_DECODE, true,
	 {"cannot unmarshal string into field \"jwt[0].issuer.audiences\" of type array (line 6)"}},
	{"an object where jwt[] goes", V1 "jwt: {}\n", AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal object into field \"jwt\" of type array"}},
	{"a list where the issuer goes", V1 "jwt:\n- issuer: []\n", AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal array into field \"jwt[0].issuer\" of type Issuer"}},
	{"a string where a rule goes", MIN "  userValidationRules: [x]\n", AUTHCFG_E_DECODE, false,
	 {"cannot unmarshal string into field \"jwt[0].userValidationRules[0]\" of type UserValidationRule"}},
	{"YAML alias", V1 ISS_OPEN "    url: &u https://a.example\n    discoveryURL: *u\n" AUD_A USER_SUB, AUTHCFG_E_DECODE,
	 true, {"YAML aliases are not supported (line 6)"}},
	{"billion laughs", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" V1, AUTHCFG_E_DECODE, false, {"YAML aliases are not supported"}},
	{"merge key", V1 ISS_OPEN "    <<: {url: https://a.example}\n" AUD_A USER_SUB, AUTHCFG_E_DECODE, false,
	 {"unknown field \"jwt[0].issuer.<<\""}},
	{"YAML tag", V1 ISS_OPEN "    url: !!binary aGk=\n" AUD_A USER_SUB, AUTHCFG_E_DECODE, false,
	 {"YAML tag tag:yaml.org,2002:binary is not supported (line 5)"}},
	{"two YAML documents", MIN "---\n" MIN, AUTHCFG_E_DECODE, false, {"more than one YAML document"}},
	{"complex mapping key", V1 "? [a]\n: b\n", AUTHCFG_E_DECODE, false, {"mapping keys must be strings"}},
	{"NUL in a string", V1 ISS_OPEN "    url: \"https://a.example\\0.evil\"\n" AUD_A USER_SUB, AUTHCFG_E_DECODE, true,
	 {"jwt[0].issuer.url: NUL bytes are not supported (line 5)"}},
	{"missing apiVersion", "kind: AuthenticationConfiguration\njwt: []\n", AUTHCFG_E_DECODE, true,
	 {"apiVersion: Required value"}},
	{"missing kind", "apiVersion: apiserver.config.k8s.io/v1\njwt: []\n", AUTHCFG_E_DECODE, true,
	 {"kind: Required value"}},
	{"v1alpha1", "apiVersion: apiserver.config.k8s.io/v1alpha1\nkind: AuthenticationConfiguration\n",
	 AUTHCFG_E_DECODE, true,
	 {"apiVersion: Unsupported value: \"apiserver.config.k8s.io/v1alpha1\": supported values: "
	  "\"apiserver.config.k8s.io/v1\", \"apiserver.config.k8s.io/v1beta1\""}},
	{"wrong kind", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\n", AUTHCFG_E_DECODE,
	 true, {"kind: Unsupported value: \"AuthorizationConfiguration\": supported values: \"AuthenticationConfiguration\""}},
	{"a list document", "- a\n- b\n", AUTHCFG_E_DECODE, false, {"must be a mapping"}},
	{"a scalar document", "hello\n", AUTHCFG_E_DECODE, false, {"must be a mapping"}},
	{"comments only", "# nothing\n", AUTHCFG_E_DECODE, false, {"must be a mapping"}},
	{"YAML syntax error", V1 "jwt: [a\n", AUTHCFG_E_SYNTAX, false, {"YAML syntax error"}},
	{"YAML tab indentation", V1 "jwt:\n\t- a\n", AUTHCFG_E_SYNTAX, false, {"YAML syntax error"}},
	{"invalid UTF-8", V1 "x: \"\xff\"\n", AUTHCFG_E_SYNTAX, false, {"YAML syntax error"}},
	{"deep nesting", NULL, AUTHCFG_E_DECODE, false, {"nesting deeper than 32"}},

	/* ---- JSON ---- */
	{"JSON minimal", "{\"apiVersion\":\"apiserver.config.k8s.io/v1\",\"kind\":\"AuthenticationConfiguration\","
	 "\"jwt\":[{\"issuer\":{\"url\":\"https://a.example\",\"audiences\":[\"a\"]},"
	 "\"claimMappings\":{\"username\":{\"claim\":\"sub\",\"prefix\":\"\"}}}]}", AUTHCFG_OK, false, {NULL}},
	{"JSON http issuer", "{\"apiVersion\":\"apiserver.config.k8s.io/v1\",\"kind\":\"AuthenticationConfiguration\","
	 "\"jwt\":[{\"issuer\":{\"url\":\"http://a.example\",\"audiences\":[\"a\"]},"
	 "\"claimMappings\":{\"username\":{\"claim\":\"sub\",\"prefix\":\"\"}}}]}", AUTHCFG_E_INVALID, true,
	 {"jwt[0].issuer.url: Invalid value: \"http://a.example\": URL scheme must be https"}},
	{"JSON duplicate member", "{\"apiVersion\":\"apiserver.config.k8s.io/v1\",\"kind\":\"AuthenticationConfiguration\","
	 "\"jwt\":[{\"issuer\":{\"url\":\"https://a.example\",\"url\":\"https://b.example\"}}]}", AUTHCFG_E_DECODE, true,
	 {"strict decoding error: duplicate field \"jwt[0].issuer.url\""}},
	{"JSON unknown member", "{\"apiVersion\":\"apiserver.config.k8s.io/v1\",\"kind\":\"AuthenticationConfiguration\","
	 "\"jwt\":[{\"issuer\":{\"url\":\"https://a.example\"},\"claimMapping\":{}}]}", AUTHCFG_E_DECODE, true,
	 {"strict decoding error: unknown field \"jwt[0].claimMapping\""}},
	{"JSON true where a string goes", "{\"apiVersion\":true}", AUTHCFG_E_DECODE, true,
	 {"cannot unmarshal bool into field \"apiVersion\" of type string"}},
	{"JSON \\u0000", "{\"apiVersion\":\"apiserver.config.k8s.io/v1\\u0000\"}", AUTHCFG_E_DECODE, false,
	 {"\\u0000 in a JSON string is not supported"}},
	{"JSON escaped backslash then u0000 is text, not NUL", "{\"a\":\"\\\\u0000\"}", AUTHCFG_E_DECODE, true,
	 {"strict decoding error: unknown field \"a\""}},
	{"JSON raw control byte in a string", "{\"apiVersion\":\"a\tb\"}", AUTHCFG_E_SYNTAX, false, {"control character"}},
	{"JSON syntax error", "{\"apiVersion\":}", AUTHCFG_E_SYNTAX, true, {"invalid JSON"}},
	{"JSON trailing data", "{\"apiVersion\":\"x\"} {}", AUTHCFG_E_SYNTAX, false, {"trailing data"}},
	{"JSON-looking YAML flow mapping is JSON (as the API server decides)", "{apiVersion: x}", AUTHCFG_E_SYNTAX, false,
	 {"invalid JSON"}},
	{"JSON deep nesting", NULL, AUTHCFG_E_DECODE, false, {"nesting deeper than 32"}},
};

/* Documents too long to write inline, built for the cases whose doc is NULL. */
static char *build_doc(const char *name)
{
	size_t cap = 1u << 16, n = 0;
	char *s = malloc(cap);

	assert_non_null(s);
#define PUT(...) (n += (size_t)snprintf(s + n, cap - n, __VA_ARGS__), assert_true(n < cap))
	if (strcmp(name, "65 audiences (ours)") == 0) {
		PUT(V1 ISS_OPEN URL_A "    audienceMatchPolicy: MatchAny\n    audiences:\n");
		for (int i = 0; i < 65; i++)
			PUT("    - aud%d\n", i);
		PUT(USER_SUB);
	} else if (strcmp(name, "65 authenticators") == 0 || strcmp(name, "64 authenticators") == 0) {
		int k = name[0] == '6' && name[1] == '5' ? 65 : 64;

		PUT(V1 "jwt:\n");
		for (int i = 0; i < k; i++)
			PUT("- issuer: {url: 'https://i%d.example', audiences: [a]}\n"
			    "  claimMappings: {username: {claim: sub, prefix: ''}}\n", i);
	} else if (strcmp(name, "deep nesting") == 0) {
		PUT(V1 "x: ");
		for (int i = 0; i < 40; i++)
			PUT("[");
		for (int i = 0; i < 40; i++)
			PUT("]");
		PUT("\n");
	} else if (strcmp(name, "JSON deep nesting") == 0) {
		PUT("{\"x\":");
		for (int i = 0; i < 40; i++)
			PUT("[");
		for (int i = 0; i < 40; i++)
			PUT("]");
		PUT("}");
	} else {
		fail_msg("no builder for %s", name);
	}
#undef PUT
	return s;
}

static int parse_str(const char *doc, authcfg_config **c, char *err, size_t errlen)
{
	return authcfg_parse((const uint8_t *)doc, strlen(doc), c, err, errlen);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const acase *t = &cases[i];
		char *built = t->doc ? NULL : build_doc(t->name);
		const char *doc = t->doc ? t->doc : built;
		authcfg_config *c = (authcfg_config *)0x1;
		char err[4096] = "";
		int rc = parse_str(doc, &c, err, sizeof(err));

		if (rc != t->rc)
			fail_msg("case \"%s\": rc %d (%s), want %d; err: %s", t->name, rc, authcfg_strerror(rc), t->rc, err);
		if (rc == AUTHCFG_OK) {
			assert_true(c != (authcfg_config *)0x1);
			authcfg_free(c);
		} else {
			if (c != (authcfg_config *)0x1)
				fail_msg("case \"%s\": out written on failure", t->name);
			if (t->exact && strcmp(err, t->has[0]) != 0)
				fail_msg("case \"%s\":\n got: %s\nwant: %s", t->name, err, t->has[0]);
			for (int k = 0; k < 4 && t->has[k]; k++)
				if (!strstr(err, t->has[k]))
					fail_msg("case \"%s\": error lacks \"%s\"; got: %s", t->name, t->has[k], err);
			if (!err[0] || strchr(err, '\n'))
				fail_msg("case \"%s\": error must be one non-empty line: %s", t->name, err);
		}
		free(built);
	}
}

/* ---- fixtures: every field, YAML and JSON alike ---- */

static void check_two_issuers(const authcfg_config *c, bool yaml)
{
	const authcfg_issuer *a, *b;
	const authcfg_expr *ex[16];

	assert_int_equal(c->api_version, yaml ? AUTHCFG_V1 : AUTHCFG_V1BETA1);
	assert_int_equal(c->njwt, 2);
	a = &c->jwt[0];
	b = &c->jwt[1];
	assert_int_equal(a->index, 0);
	assert_int_equal(b->index, 1);
	assert_string_equal(a->url, "https://dex.example.com");
	assert_int_equal(a->url_len, strlen("https://dex.example.com"));
	assert_string_equal(a->discovery_url, "https://dex.dex.svc/.well-known/openid-configuration");
	if (yaml) {
		assert_non_null(a->certificate_authority);
		assert_true(strncmp(a->certificate_authority, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
		assert_int_equal(a->certificate_authority_len, strlen(a->certificate_authority));
	} else {
		assert_null(a->certificate_authority);
	}
	assert_int_equal(a->naudiences, 2);
	assert_string_equal(a->audiences[0], "kubernetes");
	assert_string_equal(a->audiences[1], "kubectl");
	assert_true(a->audience_match_any);
	assert_int_equal(a->nclaim_rules, 2);
	assert_string_equal(a->claim_rules[0].claim, "hd");
	assert_string_equal(a->claim_rules[0].required_value, "example.com");
	assert_null(a->claim_rules[0].expr.expression);
	assert_null(a->claim_rules[0].message);
	assert_null(a->claim_rules[1].claim);
	assert_string_equal(a->claim_rules[1].expr.expression, "claims.exp - claims.iat <= 86400");
	assert_string_equal(a->claim_rules[1].expr.path, "jwt[0].claimValidationRules[1].expression");
	assert_int_equal(a->claim_rules[1].expr.kind, AUTHCFG_EXPR_CLAIM_VALIDATION);
	assert_string_equal(a->claim_rules[1].message, "tokens may live one day at most");
	assert_string_equal(a->username.claim, "email");
	assert_string_equal(a->username.prefix, "");
	assert_null(a->username.expr.expression);
	assert_string_equal(a->groups.claim, "groups");
	assert_string_equal(a->groups.prefix, "dex:");
	assert_string_equal(a->uid.claim, "sub");
	assert_null(a->uid.prefix);
	assert_int_equal(a->nextra, 1);
	assert_string_equal(a->extra[0].key, "example.com/tenant");
	assert_string_equal(a->extra[0].value.expression, "claims.tenant");
	assert_string_equal(a->extra[0].value.path, "jwt[0].claimMappings.extra[0].valueExpression");
	assert_int_equal(a->extra[0].value.kind, AUTHCFG_EXPR_EXTRA);
	assert_int_equal(a->nuser_rules, 1);
	assert_string_equal(a->user_rules[0].expr.expression, "!user.username.startsWith('system:')");
	assert_string_equal(a->user_rules[0].expr.path, "jwt[0].userValidationRules[0].expression");
	assert_int_equal(a->user_rules[0].expr.kind, AUTHCFG_EXPR_USER_VALIDATION);
	assert_string_equal(a->user_rules[0].message, "no system users");

	assert_string_equal(b->url, "https://token.actions.githubusercontent.com");
	assert_null(b->discovery_url);
	assert_null(b->certificate_authority);
	assert_int_equal(b->naudiences, 1);
	assert_false(b->audience_match_any);
	assert_null(b->claim_rules[0].message);
	assert_null(b->username.claim);
	assert_null(b->username.prefix);
	assert_string_equal(b->username.expr.expression, "\"github:\" + claims.sub");
	assert_string_equal(b->username.expr.path, "jwt[1].claimMappings.username.expression");
	assert_int_equal(b->username.expr.kind, AUTHCFG_EXPR_USERNAME);
	assert_string_equal(b->groups.expr.expression, "[\"ci\"]");
	assert_int_equal(b->groups.expr.kind, AUTHCFG_EXPR_GROUPS);
	assert_null(b->uid.claim);
	assert_null(b->uid.expr.expression);
	assert_int_equal(b->nextra, 0);
	assert_int_equal(b->nuser_rules, 0);

	/* expressions in the API server's order, with their paths */
	assert_int_equal(authcfg_issuer_exprs(a, ex, 16), 3);
	assert_ptr_equal(ex[0], &a->claim_rules[1].expr);
	assert_ptr_equal(ex[1], &a->extra[0].value);
	assert_ptr_equal(ex[2], &a->user_rules[0].expr);
	assert_int_equal(authcfg_issuer_exprs(b, ex, 1), 3); /* counts past max, writes only max */
	assert_ptr_equal(ex[0], &b->claim_rules[0].expr);

	/* selection by the token's iss: exact bytes and length */
	assert_ptr_equal(authcfg_issuer_find(c, "https://dex.example.com", 23), a);
	assert_ptr_equal(authcfg_issuer_find(c, "https://token.actions.githubusercontent.com", 43), b);
	assert_null(authcfg_issuer_find(c, "https://dex.example.co", 22));
	assert_null(authcfg_issuer_find(c, "https://dex.example.com/", 24));
	assert_null(authcfg_issuer_find(c, "https://DEX.example.com", 23));
	assert_null(authcfg_issuer_find(c, "", 0));
	assert_null(authcfg_issuer_find(NULL, "https://dex.example.com", 23));
}

static void test_fixture_two_issuers(void **state)
{
	authcfg_config *c = NULL;
	char err[1024] = "";

	(void)state;
	assert_int_equal(authcfg_load_file(FIX "two-issuers.yaml", &c, err, sizeof(err)), AUTHCFG_OK);
	check_two_issuers(c, true);
	authcfg_free(c);
	c = NULL;
	assert_int_equal(authcfg_load_file(FIX "two-issuers.json", &c, err, sizeof(err)), AUTHCFG_OK);
	check_two_issuers(c, false);
	authcfg_free(c);
}

static void test_fixture_flags_equivalent(void **state)
{
	authcfg_config *c = NULL;
	char err[1024] = "";

	(void)state;
	assert_int_equal(authcfg_load_file(FIX "flags-equivalent.yaml", &c, err, sizeof(err)), AUTHCFG_OK);
	assert_int_equal(c->njwt, 1);
	assert_string_equal(c->jwt[0].username.prefix, "https://issuer.example#");
	assert_string_equal(c->jwt[0].claim_rules[0].required_value, "platform");
	assert_string_equal(c->jwt[0].groups.prefix, "oidc:");
	authcfg_free(c);
}

static void test_claim_rule_without_required_value(void **state)
{
	authcfg_config *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse_str(MIN "  claimValidationRules: [{claim: hd}]\n", &c, err, sizeof(err)), AUTHCFG_OK);
	/* the API server: the claim must then be present with the empty string as its value */
	assert_string_equal(c->jwt[0].claim_rules[0].required_value, "");
	authcfg_free(c);
}

/* The documentation's three tabbed examples load (their tokens then pass or fail at run time); the annotated
 * reference example does not: it sets claim and expression together on purpose and has placeholders. */
static void test_k8s_docs_examples(void **state)
{
	static const char *const good[] = {"k8s-docs-valid-token.yaml", "k8s-docs-fails-claim-validation.yaml",
					   "k8s-docs-fails-user-validation.yaml"};
	authcfg_config *c = NULL;
	char err[8192] = "";
	const authcfg_expr *ex[16];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char path[256];

		snprintf(path, sizeof(path), FIX "%s", good[i]);
		if (authcfg_load_file(path, &c, err, sizeof(err)) != AUTHCFG_OK)
			fail_msg("%s: %s", good[i], err);
		assert_int_equal(c->api_version, AUTHCFG_V1);
		assert_string_equal(c->jwt[0].url, "https://example.com");
		assert_string_equal(c->jwt[0].uid.expr.expression, "claims.sub");
		assert_string_equal(c->jwt[0].extra[0].key, "example.com/tenant");
		assert_int_equal(authcfg_issuer_exprs(&c->jwt[0], ex, 16), i == 0 ? 5 : 6);
		authcfg_free(c);
		c = NULL;
	}
	assert_int_equal(authcfg_load_file(FIX "k8s-docs-reference.yaml", &c, err, sizeof(err)), AUTHCFG_E_INVALID);
	assert_null(c);
	static const char *const want[] = {
		("jwt[0].issuer.certificateAuthority: Invalid value: \"<omitted>\": data does not contain any valid RSA "
		 "or ECDSA certificates"),
		"jwt[0].issuer.egressSelectorType: Forbidden",
		"jwt[0].claimMappings.username: Invalid value: \"\": claim and expression can't both be set",
		"jwt[0].claimMappings.groups: Invalid value: \"\": claim and expression can't both be set",
		"jwt[0].claimMappings.uid: Invalid value: \"\": claim and expression can't both be set",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(err, want[i]))
			fail_msg("reference example: lacks \"%s\"; got %s", want[i], err);
	/* nothing else: the URLs, audiences, rules and extra of that example are valid */
	assert_null(strstr(err, "issuer.url"));
	assert_null(strstr(err, "audience"));
	assert_null(strstr(err, "claimValidationRules"));
	assert_null(strstr(err, "extra"));
}

static void test_limits_and_io(void **state)
{
	authcfg_config *c = NULL;
	char err[256] = "", path[] = "/tmp/kos-authcfg-XXXXXX";
	uint8_t *big;
	int fd;

	(void)state;
	assert_int_equal(authcfg_parse((const uint8_t *)"", 0, &c, err, sizeof(err)), AUTHCFG_E_TOO_LARGE);
	assert_string_equal(err, "empty config data");
	big = malloc(AUTHCFG_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, '#', AUTHCFG_MAX_BYTES + 1);
	assert_int_equal(authcfg_parse(big, AUTHCFG_MAX_BYTES + 1, &c, err, sizeof(err)), AUTHCFG_E_TOO_LARGE);
	/* exactly the cap is read (and here refused for what it says, not for its size) */
	assert_int_equal(authcfg_parse(big, AUTHCFG_MAX_BYTES, &c, err, sizeof(err)), AUTHCFG_E_DECODE);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, AUTHCFG_MAX_BYTES + 1), AUTHCFG_MAX_BYTES + 1);
	close(fd);
	assert_int_equal(authcfg_load_file(path, &c, err, sizeof(err)), AUTHCFG_E_TOO_LARGE);
	unlink(path);
	free(big);
	assert_int_equal(authcfg_load_file("/nonexistent/kos-authcfg.yaml", &c, err, sizeof(err)), AUTHCFG_E_IO);
	assert_non_null(strstr(err, "/nonexistent/kos-authcfg.yaml"));
	assert_null(c);
	/* a tiny error buffer truncates, never overflows */
	{
		char tiny[8];

		assert_int_equal(parse_str(V1 ISS_OPEN "    url: http://a\n" AUD_A USER_SUB, &c, tiny, sizeof(tiny)),
				 AUTHCFG_E_INVALID);
		assert_int_equal(strlen(tiny), 7);
		assert_int_equal(parse_str(V1 ISS_OPEN "    url: http://a\n" AUD_A USER_SUB, &c, NULL, 0),
				 AUTHCFG_E_INVALID);
	}
	/* a mapping with more than AUTHCFG_MAX_MEMBERS members */
	{
		size_t cap = 16384, n = 0;
		char *s = malloc(cap);

		assert_non_null(s);
		n += (size_t)snprintf(s, cap, "%s", V1);
		for (int i = 0; i < AUTHCFG_MAX_MEMBERS; i++)
			n += (size_t)snprintf(s + n, cap - n, "k%d: v\n", i);
		assert_true(n < cap);
		assert_int_equal(parse_str(s, &c, err, sizeof(err)), AUTHCFG_E_DECODE);
		assert_non_null(strstr(err, "more than 256 members"));
		free(s);
	}
	/* more than AUTHCFG_MAX_NODES values */
	{
		size_t cap = 4 * (AUTHCFG_MAX_NODES + 16), n = 0;
		char *s = malloc(cap);

		assert_non_null(s);
		n += (size_t)snprintf(s, cap, "%sx: [", V1);
		for (int i = 0; i < AUTHCFG_MAX_NODES; i++)
			n += (size_t)snprintf(s + n, cap - n, "a,");
		n += (size_t)snprintf(s + n, cap - n, "a]\n");
		assert_true(n < cap);
		assert_int_equal(parse_str(s, &c, err, sizeof(err)), AUTHCFG_E_DECODE);
		assert_non_null(strstr(err, "more than 65536 values"));
		free(s);
	}
	/* a long value is cut in the error message */
	{
		char doc[2048], big_err[1024];

		snprintf(doc, sizeof(doc), V1 ISS_OPEN "    url: http://%0600d\n" AUD_A USER_SUB, 0);
		assert_int_equal(parse_str(doc, &c, big_err, sizeof(big_err)), AUTHCFG_E_INVALID);
		assert_non_null(strstr(big_err, "\"...: URL scheme must be https"));
		assert_true(strlen(big_err) < 300);
	}
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = 0; e >= AUTHCFG_E_IO; e--) {
		assert_non_null(authcfg_strerror(e));
		assert_string_not_equal(authcfg_strerror(e), "unknown error");
	}
	assert_string_equal(authcfg_strerror(-99), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_fixture_two_issuers),
		cmocka_unit_test(test_fixture_flags_equivalent),
		cmocka_unit_test(test_claim_rule_without_required_value),
		cmocka_unit_test(test_k8s_docs_examples),
		cmocka_unit_test(test_limits_and_io),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
