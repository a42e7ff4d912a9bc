//! capvault's native Biscuit runtime: the broker's authorization path on biscuit-auth itself, through Node-API.
//!
//! Only what the hot path needs: verify a token once (kept by the caller as a handle), compile organisation policies
//! and capvault's request snippets once, then per request set the snippet's parameters and run an authorizer on a
//! libuv thread. Errors and outcomes cross as the same serde JSON that @biscuit-auth/biscuit-wasm produces, so one
//! mapping in TypeScript serves both runtimes. A Rust panic becomes a rejected promise, never a crashed process.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use biscuit_auth::builder::{AuthorizerBuilder, Check, Fact, Policy, Predicate, Term};
use biscuit_auth::datalog::RunLimits;
use biscuit_auth::{error, Algorithm, Authorizer, AuthorizerLimits, Biscuit, PublicKey};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::value::RawValue;
use serde_json::Value;

// biscuit-auth allocates many small objects per authorization (a cloned authorizer, the request's facts, each
// query's bindings): mimalloc serves them ~25-40% faster than the system allocator (bench/README.md, session 9).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A napi error whose message is JSON: `{"kind":"binding","error":<biscuit error>}`, `{"kind":"panic",...}` or
/// `{"kind":"params","message":...}`.
fn failure(kind: &str, body: Value) -> Error {
    let mut object = serde_json::Map::new();
    object.insert("kind".into(), Value::String(kind.into()));
    if let Value::Object(fields) = body {
        object.extend(fields);
    }
    Error::new(Status::GenericFailure, Value::Object(object).to_string())
}

fn binding_error(err: &error::Token) -> Error {
    failure("binding", serde_json::json!({ "error": serde_json::to_value(err).unwrap_or(Value::Null) }))
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Run `f`, turning a panic into an error (the process and the other requests go on). The default hook's report on
/// stderr is silenced: the panic is reported as the call's error instead.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(failure("panic", serde_json::json!({ "message": panic_message(payload) }))),
    }
}

fn public_key(hex_key: &str) -> std::result::Result<PublicKey, error::Token> {
    let bytes = hex::decode(hex_key).map_err(|e| {
        error::Token::Format(error::Format::InvalidKey(format!("could not deserialize hex encoded key: {e}")))
    })?;
    PublicKey::from_bytes(&bytes, Algorithm::Ed25519).map_err(error::Token::Format)
}

// ---- tokens ----

/// A parsed token whose signatures were verified against a root key. Shared by concurrent authorizations.
#[napi]
pub struct VerifiedToken {
    biscuit: Arc<Biscuit>,
    prepared: Arc<Mutex<Option<Prepared>>>,
}

/// The authorizer built from a token and the organisation policies it was last authorized under, not yet run. Each
/// authorization clones it and adds its request (AuthorizerBuilder::extend, vendor/CAPVAULT-PATCH.md) instead of
/// loading the token's blocks into a new authorizer again: the same authorizer, built in the same order.
struct Prepared {
    policies: Option<Arc<AuthorizerBuilder>>,
    authorizer: Arc<Authorizer>,
}

impl Prepared {
    fn is_for(&self, policies: &Option<Arc<AuthorizerBuilder>>) -> bool {
        match (&self.policies, policies) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[napi]
impl VerifiedToken {
    /// Number of blocks, authority included.
    #[napi(getter)]
    pub fn block_count(&self) -> u32 {
        self.biscuit.block_count() as u32
    }

    /// Each block's revocation identifier, hex-encoded, in block order.
    #[napi]
    pub fn revocation_ids(&self) -> Vec<String> {
        self.biscuit.revocation_identifiers().iter().map(hex::encode).collect()
    }
}

pub struct VerifyTask {
    token: Vec<u8>,
    public_key_hex: String,
}

impl Task for VerifyTask {
    type Output = Arc<Biscuit>;
    type JsValue = VerifiedToken;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded(|| {
            let key = public_key(&self.public_key_hex).map_err(|e| binding_error(&e))?;
            Biscuit::from(&self.token, key).map(Arc::new).map_err(|e| binding_error(&e))
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(VerifiedToken { biscuit: output, prepared: Arc::new(Mutex::new(None)) })
    }
}

/// Parse `token` and verify its signatures with the Ed25519 root key `publicKeyHex` (off the event loop).
#[napi(ts_return_type = "Promise<VerifiedToken>")]
pub fn verify_token(token: Buffer, public_key_hex: String) -> AsyncTask<VerifyTask> {
    AsyncTask::new(VerifyTask { token: token.to_vec(), public_key_hex })
}

// ---- compiled Datalog ----

#[derive(Clone)]
enum Statement {
    Fact(Fact),
    Check(Check),
    Policy(Policy),
}

impl Statement {
    fn parse(source: &str) -> std::result::Result<Statement, error::Token> {
        if ["check if ", "check all ", "reject if "].iter().any(|p| source.starts_with(p)) {
            Ok(Statement::Check(source.try_into()?))
        } else if ["allow if ", "deny if "].iter().any(|p| source.starts_with(p)) {
            Ok(Statement::Policy(source.try_into()?))
        } else {
            Ok(Statement::Fact(source.try_into()?))
        }
    }

    fn set(&mut self, name: &str, term: Term) -> std::result::Result<(), error::Token> {
        match self {
            Statement::Fact(f) => f.set(name, term),
            Statement::Check(c) => c.set(name, term),
            Statement::Policy(p) => p.set(name, term),
        }
    }

    fn parameter_names(&self) -> Vec<String> {
        match self {
            Statement::Fact(f) => f.parameters.as_ref().map(|p| p.keys().cloned().collect()).unwrap_or_default(),
            Statement::Check(c) => c
                .queries
                .iter()
                .flat_map(|q| q.parameters.as_ref().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
                .collect(),
            Statement::Policy(p) => p
                .queries
                .iter()
                .flat_map(|q| q.parameters.as_ref().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
                .collect(),
        }
    }

    fn add_to(self, builder: AuthorizerBuilder) -> std::result::Result<AuthorizerBuilder, error::Token> {
        match self {
            Statement::Fact(f) => builder.fact(f),
            Statement::Check(c) => builder.check(c),
            Statement::Policy(p) => builder.policy(p),
        }
    }
}

/// Organisation policies (checks and deny policies), compiled once; each authorization starts from a clone.
#[napi]
pub struct PolicyTemplate {
    builder: Arc<AuthorizerBuilder>,
}

/// Compile organisation policy statements (`kind` is "check" or "deny"). On the first bad statement, throws a JSON
/// error naming its index: a parse error, a statement of the wrong kind, or parameters (which policies cannot have).
#[napi(catch_unwind)]
pub fn compile_policies(statements: Vec<PolicyStatement>) -> Result<PolicyTemplate> {
    let mut builder = AuthorizerBuilder::new();
    for (index, s) in statements.iter().enumerate() {
        let at = |kind: &str, body: Value| {
            let mut body = body;
            body["index"] = Value::from(index);
            failure(kind, body)
        };
        let element = if s.kind == "check" {
            Check::try_from(s.source.as_str()).map(Statement::Check)
        } else {
            Policy::try_from(s.source.as_str()).map(Statement::Policy)
        }
        .map_err(|e| at("statement", serde_json::json!({ "error": serde_json::to_value(&e).unwrap_or(Value::Null) })))?;
        if !element.parameter_names().is_empty() {
            return Err(at("statement", serde_json::json!({ "parameters": element.parameter_names() })));
        }
        builder = element
            .add_to(builder)
            .map_err(|e| at("statement", serde_json::json!({ "error": serde_json::to_value(&e).unwrap_or(Value::Null) })))?;
    }
    Ok(PolicyTemplate { builder: Arc::new(builder) })
}

#[napi(object)]
pub struct PolicyStatement {
    pub kind: String,
    pub source: String,
}

/// One of capvault's request snippets (one statement per line, `{name}` parameters), parsed once.
#[napi]
pub struct RequestTemplate {
    statements: Arc<Vec<TemplateStatement>>,
}

/// A statement of a request snippet. A fact whose terms are each a parameter or a constant is kept as its predicate
/// name and slots, so that binding it builds the fact's terms directly (no clone of the parsed statement and its
/// parameter map per request); anything else is kept parsed, with its parameter names, and bound with `set`.
enum TemplateStatement {
    Fact { name: String, slots: Vec<Slot> },
    Other(Statement, Vec<String>),
}

enum Slot {
    Param(String),
    Const(Term),
}

impl TemplateStatement {
    fn of(statement: Statement) -> TemplateStatement {
        if let Statement::Fact(fact) = &statement {
            let slots: Option<Vec<Slot>> = fact
                .predicate
                .terms
                .iter()
                .map(|term| match term {
                    Term::Parameter(name) => Some(Slot::Param(name.clone())),
                    Term::Set(_) | Term::Array(_) | Term::Map(_) | Term::Variable(_) => None,
                    constant => Some(Slot::Const(constant.clone())),
                })
                .collect();
            if let Some(slots) = slots {
                return TemplateStatement::Fact { name: fact.predicate.name.clone(), slots };
            }
        }
        let names = statement.parameter_names();
        TemplateStatement::Other(statement, names)
    }
}

/// Parse a request snippet generated by capvault (never user-supplied Datalog).
#[napi(catch_unwind)]
pub fn compile_request(code: String) -> Result<RequestTemplate> {
    let statements = code
        .lines()
        .map(|line| line.trim().trim_end_matches(';').trim())
        .filter(|line| !line.is_empty())
        .map(|line| Statement::parse(line).map(TemplateStatement::of))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| binding_error(&e))?;
    Ok(RequestTemplate { statements: Arc::new(statements) })
}

// ---- parameters ----

/// A parameter value in capvault's wire form: a JSON string, boolean or integer, or an object `{"int": "<decimal>"}`
/// (a 64-bit integer), `{"date": "<RFC 3339>"}`, `{"bytes": "<hex>"}` or `{"set": [...]}`.
fn term_of(value: &Value, depth: usize) -> std::result::Result<Term, String> {
    match value {
        Value::String(s) => Ok(Term::Str(s.clone())),
        Value::Bool(b) => Ok(Term::Bool(*b)),
        Value::Number(n) => n.as_i64().map(Term::Integer).ok_or_else(|| "an integer parameter is out of range".into()),
        Value::Object(o) if o.len() == 1 && depth < 3 => {
            let (key, inner) = o.iter().next().expect("one entry");
            match (key.as_str(), inner) {
                ("int", Value::String(s)) => s.parse::<i64>().map(Term::Integer).map_err(|_| "a bad integer".into()),
                ("date", Value::String(s)) => {
                    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| "a date parameter is not RFC 3339")?;
                    u64::try_from(at.unix_timestamp()).map(Term::Date).map_err(|_| "a date before 1970".into())
                }
                ("bytes", Value::String(s)) => hex::decode(s).map(Term::Bytes).map_err(|_| "bytes are not hex".into()),
                ("set", Value::Array(items)) => Ok(Term::Set(
                    items.iter().map(|v| term_of(v, depth + 1)).collect::<std::result::Result<BTreeSet<_>, _>>()?,
                )),
                _ => Err(format!("an unknown parameter form {key}")),
            }
        }
        _ => Err("an unsupported parameter value".into()),
    }
}

/// A request's parameters, read from their JSON text without copying names or values: names are plain identifiers
/// (datalog-values.ts checks them before they get here), values are converted where they are used.
type Params<'a> = HashMap<&'a str, &'a RawValue>;

/// A parameter from its JSON text: a string without escapes is taken as it is written, anything else parsed.
fn term_of_raw(raw: &RawValue) -> std::result::Result<Term, String> {
    let text = raw.get();
    if text.len() >= 2 && text.starts_with('"') && !text.contains('\\') {
        return Ok(Term::Str(text[1..text.len() - 1].to_string()));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    term_of(&value, 0)
}

/// The snippet's statements with the parameters' values in place. Every parameter a statement names must have a
/// value; values are converted where they are used (the tenant is used twice).
fn bind(template: &[TemplateStatement], params: &Params) -> Result<Vec<Statement>> {
    let value_of = |name: &String| -> Result<Term> {
        let value = params
            .get(name.as_str())
            .ok_or_else(|| failure("params", serde_json::json!({ "message": format!("no value for {name}") })))?;
        term_of_raw(value).map_err(|m| failure("params", serde_json::json!({ "message": m })))
    };
    template
        .iter()
        .map(|statement| match statement {
            TemplateStatement::Fact { name, slots } => {
                let terms = slots
                    .iter()
                    .map(|slot| match slot {
                        Slot::Param(param) => value_of(param),
                        Slot::Const(term) => Ok(term.clone()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Statement::Fact(Fact { predicate: Predicate::new(name.clone(), terms), parameters: None }))
            }
            TemplateStatement::Other(statement, names) => {
                let mut bound = statement.clone();
                for name in names {
                    bound.set(name, value_of(name)?).map_err(|e| binding_error(&e))?;
                }
                Ok(bound)
            }
        })
        .collect()
}

// ---- authorization ----

#[napi(object)]
#[derive(Clone, Copy)]
pub struct Limits {
    pub max_facts: u32,
    pub max_iterations: u32,
    pub max_time_micros: u32,
}

impl From<Limits> for AuthorizerLimits {
    fn from(l: Limits) -> Self {
        RunLimits {
            max_facts: u64::from(l.max_facts),
            max_iterations: u64::from(l.max_iterations),
            max_time: Duration::from_micros(u64::from(l.max_time_micros)),
        }
    }
}

pub struct AuthorizeTask {
    token: Arc<Biscuit>,
    prepared: Arc<Mutex<Option<Prepared>>>,
    policies: Option<Arc<AuthorizerBuilder>>,
    request: Arc<Vec<TemplateStatement>>,
    params: String,
    limits: Limits,
}

/// The result as `{"Ok": <policy index>}` or `{"Err": <biscuit error>}` (FailedLogic, RunLimit, Execution, ...).
fn outcome_json(result: std::result::Result<usize, error::Token>) -> String {
    match result {
        Ok(policy) => serde_json::json!({ "Ok": policy }).to_string(),
        Err(e) => serde_json::json!({ "Err": serde_json::to_value(&e).unwrap_or(Value::Null) }).to_string(),
    }
}

impl AuthorizeTask {
    /// The outcome JSON, with `"us"`: the microseconds the authorization took (the caller's placement hint).
    fn run(&self) -> Result<String> {
        guarded(|| {
            let started = std::time::Instant::now();
            let params: Params = serde_json::from_str(&self.params)
                .map_err(|e| failure("params", serde_json::json!({ "message": e.to_string() })))?;
            let mut request = AuthorizerBuilder::new();
            for statement in bind(&self.request, &params)? {
                request = statement.add_to(request).map_err(|e| binding_error(&e))?;
            }
            // The configured limits bound the whole run, fact generation included (biscuit-wasm runs fact
            // generation with biscuit's fixed defaults whatever is passed).
            let request = request.set_limits(self.limits.into());
            let result = self.prepared().and_then(|prepared| {
                let mut authorizer = Authorizer::clone(&prepared);
                request.extend(&mut authorizer)?;
                authorizer.authorize()
            });
            let us = started.elapsed().as_micros() as u64;
            Ok(match result {
                Ok(policy) => format!("{{\"Ok\":{policy},\"us\":{us}}}"),
                Err(e) => serde_json::json!({ "Err": serde_json::to_value(&e).unwrap_or(Value::Null), "us": us }).to_string(),
            })
        })
    }

    /// The token's authorizer under these policies (built on first use, kept on the token).
    fn prepared(&self) -> std::result::Result<Arc<Authorizer>, error::Token> {
        // The lock is held only to read or replace the Arc: nothing in between can panic.
        let known = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = known.as_ref().filter(|p| p.is_for(&self.policies)) {
            return Ok(Arc::clone(&p.authorizer));
        }
        drop(known);
        let builder = match &self.policies {
            Some(template) => AuthorizerBuilder::clone(template),
            None => AuthorizerBuilder::new(),
        };
        let authorizer = Arc::new(builder.build(&self.token)?);
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Prepared { policies: self.policies.clone(), authorizer: Arc::clone(&authorizer) });
        Ok(authorizer)
    }
}

impl Task for AuthorizeTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        self.run()
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

fn authorize_task(
    token: &VerifiedToken,
    policies: Option<&PolicyTemplate>,
    request: &RequestTemplate,
    params_json: String,
    limits: Limits,
) -> AuthorizeTask {
    AuthorizeTask {
        token: Arc::clone(&token.biscuit),
        prepared: Arc::clone(&token.prepared),
        policies: policies.map(|p| Arc::clone(&p.builder)),
        request: Arc::clone(&request.statements),
        params: params_json,
        limits,
    }
}

/// Authorize one request on a libuv thread: the token's authorizer under the policy template (built once per token,
/// cloned per request) + the request snippet with `paramsJson` bound, run with `limits`. Resolves to the outcome
/// JSON: `{"Ok": <policy index>}` or `{"Err": <biscuit error>}`, with `"us"`, the microseconds it took.
#[napi(ts_return_type = "Promise<string>")]
pub fn authorize(
    token: &VerifiedToken,
    policies: Option<&PolicyTemplate>,
    request: &RequestTemplate,
    params_json: String,
    limits: Limits,
) -> AsyncTask<AuthorizeTask> {
    AsyncTask::new(authorize_task(token, policies, request, params_json, limits))
}

/// The same, on the calling thread: for authorizations known to be short, where a thread hop costs more than the run.
#[napi]
pub fn authorize_sync(
    token: &VerifiedToken,
    policies: Option<&PolicyTemplate>,
    request: &RequestTemplate,
    params_json: String,
    limits: Limits,
) -> Result<String> {
    authorize_task(token, policies, request, params_json, limits).run()
}

// ---- conformance ----

pub struct ReplayTask {
    token: Vec<u8>,
    public_key_hex: String,
    code: String,
    limits: Option<Limits>,
}

impl Task for ReplayTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded(|| {
            let err = |e: error::Token| {
                serde_json::json!({ "revocationIds": Value::Null, "result": { "Err": serde_json::to_value(&e).unwrap_or(Value::Null) } })
                    .to_string()
            };
            let key = match public_key(&self.public_key_hex) {
                Ok(key) => key,
                Err(e) => return Ok(err(e)),
            };
            let token = match Biscuit::from(&self.token, key) {
                Ok(token) => token,
                Err(e) => return Ok(err(e)),
            };
            let ids: Vec<String> = token.revocation_identifiers().iter().map(hex::encode).collect();
            let built = AuthorizerBuilder::new().code(&self.code).and_then(|builder| {
                let builder = match self.limits {
                    Some(limits) => builder.set_limits(limits.into()),
                    None => builder,
                };
                builder.build(&token)
            });
            let result: Value = serde_json::from_str(&outcome_json(built.and_then(|mut a| a.authorize())))
                .expect("outcome_json writes JSON");
            Ok(serde_json::json!({ "revocationIds": ids, "result": result }).to_string())
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// Parse a token with an explicit root key and run arbitrary authorizer code on it (the Biscuit specification
/// samples), resolving to `{"revocationIds": [...] | null, "result": {"Ok": n} | {"Err": ...}}`. Never for requests.
#[napi(ts_return_type = "Promise<string>")]
pub fn replay(token: Buffer, public_key_hex: String, code: String, limits: Option<Limits>) -> AsyncTask<ReplayTask> {
    AsyncTask::new(ReplayTask { token: token.to_vec(), public_key_hex, code, limits })
}

/// Panic on purpose (tests prove that a panic rejects one call and leaves the process and the runtime working).
#[napi(ts_return_type = "Promise<string>")]
pub fn diagnostic_panic() -> AsyncTask<PanicTask> {
    AsyncTask::new(PanicTask)
}

pub struct PanicTask;

impl Task for PanicTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded(|| panic!("diagnostic panic"))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}
