//! The sample bank API that `rampart demo` puts behind the gateway.
//!
//! It is a small, self-contained core-banking backend: accounts, balances,
//! paged transactions and payments, served as JSON by an axum [`Router`]. All
//! of its data is **demo data**: invented customers, invented accounts and
//! IBANs built from made-up (or publicly documented example) bank codes with
//! correct mod-97 check digits. There is no real customer data in it.
//!
//! Accounts and their transaction histories are fixed: they are generated
//! once, deterministically, from a seed per account, so every run of the demo
//! shows the same data. Payments are created at run time and kept in memory,
//! at most 10 000 of them (then new ones are refused with 503).
//!
//! Like many real backends it is a little careless, on purpose, so that the
//! gateway has something to fix in the demo: every response carries
//! `Server: demo-core-banking/1.0` and `X-Powered-By: DemoBank`,
//! `GET /v1/debug/fail` answers 500 with a Java stack trace naming internal
//! hosts, and `GET /v1/debug/slow?ms=N` answers late. Its own errors are
//! RFC 9457 `application/problem+json`. The OpenAPI description of exactly
//! this API is `config/demo/bank-openapi.yaml`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

/// Most payments the demo bank keeps in memory; beyond it, new payments are
/// refused with 503 so that the demo cannot be made to eat memory.
const MAX_PAYMENTS: usize = 10_000;
/// Payments up to this amount (in minor units) settle at once (`ACSC`);
/// larger ones are only received (`RCVD`), pending a manual check.
const INSTANT_SETTLEMENT_LIMIT_CENTS: i64 = money(10_000, 0);
/// Default and largest page sizes of the transaction list.
const DEFAULT_PAGE_SIZE: u64 = 20;
const MAX_PAGE_SIZE: u64 = 100;
/// Default and largest delay of `GET /v1/debug/slow`.
const DEFAULT_SLOW_MS: u64 = 1_000;
const MAX_SLOW_MS: u64 = 30_000;
/// Longest creditor name and remittance text (the SEPA limits).
const MAX_NAME_CHARS: usize = 70;
const MAX_REMITTANCE_CHARS: usize = 140;
/// Base of the `type` URIs of the problem documents.
const PROBLEM_BASE: &str = "https://bank.example/problems/";

// ---------------------------------------------------------------------------
// Seed data
// ---------------------------------------------------------------------------

/// What kind of account it is; decides how its history is generated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Current,
    Savings,
}

/// One account as the API shows it, plus the seed of its history.
#[derive(Clone, Debug, Serialize)]
struct Account {
    account_id: &'static str,
    iban: &'static str,
    currency: &'static str,
    name: &'static str,
    product: &'static str,
    customer_id: &'static str,
    owner_name: &'static str,
    status: &'static str,
    #[serde(skip)]
    kind: Kind,
    /// Balance before the first generated transaction, in minor units.
    #[serde(skip)]
    opening_cents: i64,
    /// Card authorisations not yet booked, in minor units.
    #[serde(skip)]
    pending_cents: i64,
    /// IBAN of the owner's current account (the other side of savings transfers).
    #[serde(skip)]
    linked_iban: &'static str,
    #[serde(skip)]
    seed: u64,
    /// How many transactions to generate at least.
    #[serde(skip)]
    history_len: usize,
}

/// The fixed accounts of the demo bank. The owners are the usual fictional
/// placeholder names of Germany and France.
const ACCOUNTS: [Account; 5] = [
    Account {
        account_id: "acc-1001",
        iban: "DE18200411330012345678",
        currency: "EUR",
        name: "Current account",
        product: "Girokonto Plus",
        customer_id: "cust-001",
        owner_name: "Erika Mustermann",
        status: "enabled",
        kind: Kind::Current,
        opening_cents: money(1_520, 35),
        pending_cents: money(37, 80),
        linked_iban: "DE18200411330012345678",
        seed: 0x1001,
        history_len: 72,
    },
    Account {
        account_id: "acc-1002",
        iban: "DE11200411330098765432",
        currency: "EUR",
        name: "Savings",
        product: "Tagesgeld Flex",
        customer_id: "cust-001",
        owner_name: "Erika Mustermann",
        status: "enabled",
        kind: Kind::Savings,
        opening_cents: money(12_400, 0),
        pending_cents: 0,
        linked_iban: "DE18200411330012345678",
        seed: 0x1002,
        history_len: 61,
    },
    Account {
        account_id: "acc-1003",
        iban: "FR1420041010050500013M02606",
        currency: "EUR",
        name: "Current account",
        product: "Compte Courant Essentiel",
        customer_id: "cust-002",
        owner_name: "Jean Dupont",
        status: "enabled",
        kind: Kind::Current,
        opening_cents: money(2_310, 90),
        pending_cents: money(112, 45),
        linked_iban: "FR1420041010050500013M02606",
        seed: 0x1003,
        history_len: 66,
    },
    Account {
        account_id: "acc-1004",
        iban: "GB23BKDM40512012345678",
        currency: "GBP",
        name: "Current account",
        product: "Everyday Current Account",
        customer_id: "cust-002",
        owner_name: "Jean Dupont",
        status: "enabled",
        kind: Kind::Current,
        opening_cents: money(845, 10),
        pending_cents: 0,
        linked_iban: "GB23BKDM40512012345678",
        seed: 0x1004,
        history_len: 63,
    },
    Account {
        account_id: "acc-1005",
        iban: "NL26DEMB0123456789",
        currency: "EUR",
        name: "Savings",
        product: "Spaarrekening Online",
        customer_id: "cust-002",
        owner_name: "Jean Dupont",
        status: "blocked",
        kind: Kind::Savings,
        opening_cents: money(5_000, 0),
        pending_cents: 0,
        linked_iban: "FR1420041010050500013M02606",
        seed: 0x1005,
        history_len: 60,
    },
];

/// A kind of everyday transaction: who, why, and the range of the amount.
struct Template {
    name: &'static str,
    iban: &'static str,
    remittance: &'static str,
    /// Inclusive range of the amount in minor units; negative = debit.
    min_cents: i64,
    max_cents: i64,
}

/// Everyday debits of a current account (invented merchants; the IBANs are
/// publicly documented example IBANs or invented ones, all mod-97 valid).
const CURRENT_TEMPLATES: [Template; 9] = [
    Template {
        name: "Rewe Markt GmbH",
        iban: "DE12500105170648489890",
        remittance: "Card payment groceries",
        min_cents: -money(145, 0),
        max_cents: -money(8, 0),
    },
    Template {
        name: "Stadtwerke Energie AG",
        iban: "DE02120300000000202051",
        remittance: "Electricity instalment",
        min_cents: -money(120, 0),
        max_cents: -money(45, 0),
    },
    Template {
        name: "Telco Mobile SA",
        iban: "FR3330002005500000157841Z25",
        remittance: "Mobile phone bill",
        min_cents: -money(59, 99),
        max_cents: -money(19, 99),
    },
    Template {
        name: "Cafe Central Wien",
        iban: "AT611904300234573201",
        remittance: "Card payment",
        min_cents: -money(28, 0),
        max_cents: -money(3, 50),
    },
    Template {
        name: "Booking Travel BV",
        iban: "NL20INGB0001234567",
        remittance: "Hotel reservation",
        min_cents: -money(640, 0),
        max_cents: -money(80, 0),
    },
    Template {
        name: "Libreria Roma Srl",
        iban: "IT60X0542811101000000123456",
        remittance: "Books order",
        min_cents: -money(60, 0),
        max_cents: -money(9, 0),
    },
    Template {
        name: "Farmacia Sol SL",
        iban: "ES9121000418450200051332",
        remittance: "Pharmacy",
        min_cents: -money(45, 0),
        max_cents: -money(4, 0),
    },
    Template {
        name: "Green Rail NV",
        iban: "BE68539007547034",
        remittance: "Train tickets",
        min_cents: -money(95, 0),
        max_cents: -money(12, 0),
    },
    Template {
        name: "Emerald Insurance DAC",
        iban: "IE29AIBK93115212345678",
        remittance: "Home insurance premium",
        min_cents: -money(48, 0),
        max_cents: -money(21, 0),
    },
];

/// Monthly salary and rent of a current account.
const SALARY: Template = Template {
    name: "Acme Industries GmbH",
    iban: "DE89370400440532013000",
    remittance: "Salary",
    min_cents: money(2_900, 0),
    max_cents: money(3_400, 0),
};
const RENT: Template = Template {
    name: "Hausverwaltung Nord KG",
    iban: "DE77100100100123456789",
    remittance: "Rent",
    min_cents: -money(1_150, 0),
    max_cents: -money(1_150, 0),
};

/// An amount in minor units, written as whole units and cents.
const fn money(whole: i64, cents: i64) -> i64 {
    whole * 100 + cents
}

/// Name used for transfers between a customer's own accounts.
const OWN_TRANSFER_NAME: &str = "Own account transfer";

/// The bank's own interest account, the other side of interest credits.
const INTEREST_NAME: &str = "DemoBank Interest";
const INTEREST_IBAN: &str = "DE72200411330000000001";

/// First day of the generated histories.
const HISTORY_START: (i64, u32, u32) = (2025, 3, 3);

// ---------------------------------------------------------------------------
// API types
// ---------------------------------------------------------------------------

/// An amount of money: a decimal string and an ISO 4217 currency code.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
struct Amount {
    amount: String,
    currency: String,
}

/// The other side of a transaction or payment.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
struct Party {
    name: String,
    iban: String,
}

/// One booked transaction.
#[derive(Clone, Debug, Serialize)]
struct Transaction {
    transaction_id: String,
    booking_date: String,
    value_date: String,
    amount: String,
    currency: &'static str,
    counterparty: Party,
    remittance_information: String,
}

/// The booked history of one account, newest first, and its closing balance.
struct Ledger {
    transactions: Vec<Transaction>,
    closing_cents: i64,
    last_booking_date: String,
}

/// A payment as stored and returned.
#[derive(Clone, Debug, Serialize)]
struct Payment {
    payment_id: String,
    status: &'static str,
    created_at: String,
    debtor_account: String,
    debtor_iban: String,
    instructed_amount: Amount,
    creditor: Party,
    #[serde(skip_serializing_if = "Option::is_none")]
    remittance_information: Option<String>,
}

/// `GET /v1/accounts`.
#[derive(Serialize)]
struct AccountList<'a> {
    accounts: Vec<&'a Account>,
}

/// `GET /v1/accounts/{account_id}/balances`.
#[derive(Serialize)]
struct Balances {
    account_id: &'static str,
    iban: &'static str,
    balances: Vec<Balance>,
}

/// One balance of an account.
#[derive(Serialize)]
struct Balance {
    balance_type: &'static str,
    balance_amount: Amount,
    reference_date: String,
}

/// `GET /v1/accounts/{account_id}/transactions`.
#[derive(Serialize)]
struct TransactionPage {
    account_id: &'static str,
    items: Vec<Transaction>,
    page: u64,
    page_size: u64,
    total_items: u64,
    total_pages: u64,
    links: Links,
}

/// Navigation links of a page (paths, relative to the bank's origin).
#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    last: String,
}

/// Query of the transaction list; parsed by hand for precise errors.
#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
    page_size: Option<String>,
}

/// Query of `GET /v1/debug/slow`.
#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<String>,
}

/// Body of `POST /v1/payments`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentRequest {
    debtor_account: String,
    instructed_amount: AmountRequest,
    creditor: PartyRequest,
    #[serde(default, deserialize_with = "present_string")]
    remittance_information: Option<String>,
}

/// `instructed_amount` of a payment request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountRequest {
    amount: String,
    currency: String,
}

/// `creditor` of a payment request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyRequest {
    name: String,
    iban: String,
}

/// An optional string member that, when present, must be a string (not null).
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------
// Problems (RFC 9457)
// ---------------------------------------------------------------------------

/// One invalid member of a request body.
struct FieldError {
    pointer: &'static str,
    detail: String,
}

/// An error response as `application/problem+json`.
struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: String) -> Self {
        Problem {
            status,
            slug,
            title,
            detail,
            errors: Vec::new(),
        }
    }

    fn not_found(detail: String) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    fn invalid_request(detail: String) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{PROBLEM_BASE}{}", self.slug)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        if !self.errors.is_empty() {
            let errors: Vec<Value> = self
                .errors
                .iter()
                .map(|e| json!({ "pointer": e.pointer, "detail": e.detail }))
                .collect();
            body.insert("errors".into(), Value::Array(errors));
        }
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            Value::Object(body).to_string(),
        )
            .into_response()
    }
}

/// Turns a refused JSON body into a problem instead of axum's plain text.
fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "The request body must be JSON, sent with `Content-Type: application/json`.".into(),
        ),
        JsonRejection::JsonSyntaxError(e) => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            e.body_text(),
        ),
        JsonRejection::JsonDataError(e) => Problem::invalid_request(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            "The request body is too large.".into(),
        ),
        other => Problem::invalid_request(other.body_text()),
    }
}

// ---------------------------------------------------------------------------
// The bank
// ---------------------------------------------------------------------------

/// Shared in-memory state of the demo bank (accounts are fixed; payments are
/// created at run time).
pub struct Bank {
    accounts: Vec<Account>,
    ledgers: HashMap<&'static str, Ledger>,
    payments: Mutex<HashMap<String, Payment>>,
}

impl Bank {
    /// A bank with the seeded accounts and transaction histories and no
    /// payments yet.
    pub fn new() -> Arc<Bank> {
        let accounts = ACCOUNTS.to_vec();
        let ledgers = accounts
            .iter()
            .map(|a| (a.account_id, generate_ledger(a)))
            .collect();
        Arc::new(Bank {
            accounts,
            ledgers,
            payments: Mutex::new(HashMap::new()),
        })
    }

    fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.account_id == id)
    }

    /// The account and its ledger, or a 404 problem.
    fn account_and_ledger(
        &self,
        id: Result<Path<String>, PathRejection>,
        owner: Option<&str>,
    ) -> Result<(&Account, &Ledger), Problem> {
        let unknown = || Problem::not_found("No account with this id.".into());
        let Ok(Path(id)) = id else {
            return Err(unknown());
        };
        // Another customer's account does not exist, as far as they know.
        let account = self
            .account(&id)
            .filter(|a| owner.is_none_or(|o| o == a.customer_id))
            .ok_or_else(unknown)?;
        let ledger = self.ledgers.get(account.account_id).ok_or_else(unknown)?;
        Ok((account, ledger))
    }

    /// The payment store. A poisoned lock is still usable: no code panics
    /// while holding it halfway through an update.
    fn payments(&self) -> MutexGuard<'_, HashMap<String, Payment>> {
        self.payments.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The demo bank's routes on a fresh [`Bank`] with the seeded data.
pub fn router() -> Router {
    router_with(Bank::new())
}

fn router_with(bank: Arc<Bank>) -> Router {
    Router::new()
        .route("/v1/accounts", get(list_accounts))
        .route("/v1/accounts/{account_id}", get(get_account))
        .route("/v1/accounts/{account_id}/balances", get(get_balances))
        .route("/v1/accounts/{account_id}/transactions", get(list_transactions))
        .route("/v1/payments", post(create_payment))
        .route("/v1/payments/{payment_id}", get(get_payment))
        .route("/v1/debug/fail", get(debug_fail))
        .route("/v1/debug/slow", get(debug_slow))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::map_response(leaky_headers))
        .with_state(bank)
}

/// The headers a carelessly configured backend sends; the gateway strips them.
async fn leaky_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("demo-core-banking/1.0"));
    headers.insert(
        HeaderName::from_static("x-powered-by"),
        HeaderValue::from_static("DemoBank"),
    );
    response
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

async fn not_found() -> Problem {
    Problem::not_found("No resource at this path.".into())
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "This resource does not support this method.".into(),
    )
}

/// The customer the gateway authenticated (`x-authenticated-subject`), if
/// any: behind Rampart each customer sees only their own accounts.
fn customer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("x-authenticated-subject")
        .and_then(|v| v.to_str().ok())
}

async fn list_accounts(State(bank): State<Arc<Bank>>, headers: http::HeaderMap) -> Response {
    let owner = customer(&headers);
    Json(AccountList {
        accounts: bank
            .accounts
            .iter()
            .filter(|a| owner.is_none_or(|o| o == a.customer_id))
            .collect(),
    })
    .into_response()
}

async fn get_account(
    State(bank): State<Arc<Bank>>,
    headers: http::HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    match bank.account_and_ledger(id, customer(&headers)) {
        Ok((account, _)) => Json(account).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn get_balances(
    State(bank): State<Arc<Bank>>,
    headers: http::HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let (account, ledger) = match bank.account_and_ledger(id, customer(&headers)) {
        Ok(found) => found,
        Err(problem) => return problem.into_response(),
    };
    let amount = |cents: i64| Amount {
        amount: format_cents(cents),
        currency: account.currency.into(),
    };
    Json(Balances {
        account_id: account.account_id,
        iban: account.iban,
        balances: vec![
            Balance {
                balance_type: "closingBooked",
                balance_amount: amount(ledger.closing_cents),
                reference_date: ledger.last_booking_date.clone(),
            },
            Balance {
                balance_type: "interimAvailable",
                balance_amount: amount(ledger.closing_cents - account.pending_cents),
                reference_date: ledger.last_booking_date.clone(),
            },
        ],
    })
    .into_response()
}

async fn list_transactions(
    State(bank): State<Arc<Bank>>,
    headers: http::HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let (account, ledger) = match bank.account_and_ledger(id, customer(&headers)) {
        Ok(found) => found,
        Err(problem) => return problem.into_response(),
    };
    let (page, page_size) = match parse_paging(query) {
        Ok(paging) => paging,
        Err(problem) => return problem.into_response(),
    };
    let total_items = ledger.transactions.len() as u64;
    let total_pages = total_items.div_ceil(page_size);
    let skip = usize::try_from((page - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).unwrap_or(usize::MAX);
    let items = ledger
        .transactions
        .iter()
        .skip(skip)
        .take(take)
        .cloned()
        .collect();
    let last = total_pages.max(1);
    let link = |p: u64| {
        format!(
            "/v1/accounts/{}/transactions?page={p}&page_size={page_size}",
            account.account_id
        )
    };
    Json(TransactionPage {
        account_id: account.account_id,
        items,
        page,
        page_size,
        total_items,
        total_pages,
        links: Links {
            this: link(page),
            first: link(1),
            prev: (page > 1).then(|| link((page - 1).min(last))),
            next: (page < total_pages).then(|| link(page + 1)),
            last: link(last),
        },
    })
    .into_response()
}

/// `page` (default 1, at least 1) and `page_size` (default 20, 1 to 100).
fn parse_paging(query: Result<Query<PageQuery>, QueryRejection>) -> Result<(u64, u64), Problem> {
    let Query(query) = query.map_err(|e| Problem::invalid_request(e.body_text()))?;
    let page = match query.page.as_deref() {
        None => 1,
        Some(raw) => match parse_digits(raw) {
            Some(n) if n >= 1 => n,
            _ => {
                return Err(Problem::invalid_request(
                    "`page` must be a whole number of at least 1.".into(),
                ))
            }
        },
    };
    let page_size = match query.page_size.as_deref() {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => match parse_digits(raw) {
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(Problem::invalid_request(format!(
                    "`page_size` must be a whole number from 1 to {MAX_PAGE_SIZE}."
                )))
            }
        },
    };
    Ok((page, page_size))
}

/// A non-empty string of ASCII digits as a number (saturating at `u64::MAX`).
fn parse_digits(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(raw.parse().unwrap_or(u64::MAX))
}

async fn create_payment(
    State(bank): State<Arc<Bank>>,
    body: Result<Json<PaymentRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_problem(rejection).into_response(),
    };
    let (debtor, cents) = match validate_payment(&bank, &request) {
        Ok(valid) => valid,
        Err(problem) => return problem.into_response(),
    };
    let payment = Payment {
        payment_id: uuid::Uuid::new_v4().to_string(),
        status: if cents <= INSTANT_SETTLEMENT_LIMIT_CENTS {
            "ACSC"
        } else {
            "RCVD"
        },
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        debtor_account: debtor.account_id.into(),
        debtor_iban: debtor.iban.into(),
        instructed_amount: Amount {
            amount: format_cents(cents),
            currency: debtor.currency.into(),
        },
        creditor: Party {
            name: request.creditor.name,
            iban: request.creditor.iban,
        },
        remittance_information: request.remittance_information,
    };
    {
        let mut payments = bank.payments();
        if payments.len() >= MAX_PAYMENTS {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "capacity-exceeded",
                "Capacity exceeded",
                "The demo bank stores no more payments; restart the demo.".into(),
            )
            .into_response();
        }
        payments.insert(payment.payment_id.clone(), payment.clone());
    }
    let location = format!("/v1/payments/{}", payment.payment_id);
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(payment)).into_response()
}

/// Checks every member of a payment request; reports all failures at once.
/// On success: the debtor account and the amount in minor units.
fn validate_payment<'b>(bank: &'b Bank, request: &PaymentRequest) -> Result<(&'b Account, i64), Problem> {
    let mut errors = Vec::new();
    let mut error = |pointer: &'static str, detail: &str| {
        errors.push(FieldError {
            pointer,
            detail: detail.into(),
        })
    };

    let debtor = bank.account(&request.debtor_account);
    match debtor {
        None => error("#/debtor_account", "No account with this id."),
        Some(a) if a.status != "enabled" => error(
            "#/debtor_account",
            "This account is blocked and cannot make payments.",
        ),
        Some(_) => {}
    }

    let cents = parse_amount(&request.instructed_amount.amount);
    match cents {
        None => error(
            "#/instructed_amount/amount",
            "Must be a decimal string with at most two decimals, such as \"125.00\".",
        ),
        Some(0) => error("#/instructed_amount/amount", "Must be greater than zero."),
        Some(_) => {}
    }

    let currency = request.instructed_amount.currency.as_str();
    if !is_currency_code(currency) {
        error(
            "#/instructed_amount/currency",
            "Must be an ISO 4217 code of three capital letters, such as \"EUR\".",
        );
    } else if let Some(a) = debtor {
        if a.currency != currency {
            error(
                "#/instructed_amount/currency",
                &format!("Must be the currency of the debtor account, {}.", a.currency),
            );
        }
    }

    let name = request.creditor.name.as_str();
    if name.trim().is_empty() {
        error("#/creditor/name", "Must not be empty.");
    } else if name.chars().count() > MAX_NAME_CHARS {
        error(
            "#/creditor/name",
            &format!("Must be at most {MAX_NAME_CHARS} characters."),
        );
    } else if name.chars().any(char::is_control) {
        error("#/creditor/name", "Must not contain control characters.");
    }

    if !iban_is_valid(&request.creditor.iban) {
        error(
            "#/creditor/iban",
            "Must be a valid IBAN in electronic format (capitals, no spaces, mod-97 check digits).",
        );
    }

    if let Some(text) = &request.remittance_information {
        if text.chars().count() > MAX_REMITTANCE_CHARS {
            error(
                "#/remittance_information",
                &format!("Must be at most {MAX_REMITTANCE_CHARS} characters."),
            );
        } else if text.chars().any(char::is_control) {
            error("#/remittance_information", "Must not contain control characters.");
        }
    }

    match (debtor, cents) {
        (Some(debtor), Some(cents)) if errors.is_empty() => Ok((debtor, cents)),
        _ => Err(Problem {
            errors,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-payment",
                "Invalid payment",
                "The payment request failed validation; see `errors`.".into(),
            )
        }),
    }
}

async fn get_payment(State(bank): State<Arc<Bank>>, id: Result<Path<String>, PathRejection>) -> Response {
    let found = match id {
        Ok(Path(id)) => bank.payments().get(&id).cloned(),
        Err(_) => None,
    };
    match found {
        Some(payment) => Json(payment).into_response(),
        None => Problem::not_found("No payment with this id.".into()).into_response(),
    }
}

/// A 500 with the kind of body a misconfigured Java backend leaks.
async fn debug_fail() -> Response {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let trace = "java.lang.IllegalStateException: Ledger connection pool exhausted \
(jdbc:oracle:thin:@core-db-01.internal.bank.example:1521/LEDGER, user=core_app)\n\
\tat com.bank.core.PaymentService.process(PaymentService.java:42)\n\
\tat com.bank.core.PaymentController.submit(PaymentController.java:117)\n\
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n\
\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)\n\
\tat java.base/java.lang.Thread.run(Thread.java:833)\n";
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({
            "timestamp": now,
            "status": 500,
            "error": "Internal Server Error",
            "exception": "java.lang.IllegalStateException",
            "message": "Ledger connection pool exhausted",
            "trace": trace,
            "path": "/v1/debug/fail",
        })),
    )
        .into_response()
}

async fn debug_slow(query: Result<Query<SlowQuery>, QueryRejection>) -> Response {
    let delay = match query {
        Ok(Query(q)) => slow_delay(q.ms.as_deref()),
        Err(e) => Err(Problem::invalid_request(e.body_text())),
    };
    match delay {
        Ok(delay) => {
            tokio::time::sleep(delay).await;
            let slept_ms = u64::try_from(delay.as_millis()).unwrap_or(MAX_SLOW_MS);
            Json(json!({ "slept_ms": slept_ms })).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// The delay asked for by `ms` (default 1000), capped at 30 000 ms.
fn slow_delay(ms: Option<&str>) -> Result<Duration, Problem> {
    let ms = match ms {
        None => DEFAULT_SLOW_MS,
        Some(raw) => parse_digits(raw)
            .ok_or_else(|| Problem::invalid_request("`ms` must be a whole number of milliseconds.".into()))?,
    };
    Ok(Duration::from_millis(ms.min(MAX_SLOW_MS)))
}

// ---------------------------------------------------------------------------
// Money, IBANs, dates
// ---------------------------------------------------------------------------

/// Parses `^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$` into minor units.
fn parse_amount(s: &str) -> Option<i64> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || int.len() > 15 || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    let mut cents = int.parse::<i64>().ok()?.checked_mul(100)?;
    if let Some(frac) = frac {
        if !digits(frac) || frac.len() > 2 {
            return None;
        }
        let value = frac.parse::<i64>().ok()?;
        cents += if frac.len() == 1 { value * 10 } else { value };
    }
    Some(cents)
}

/// Minor units as a decimal string with two decimals, signed when negative.
fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `^[A-Z]{3}$`.
fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// An IBAN in electronic format, `^[A-Z]{2}(0[2-9]|[1-8][0-9]|9[0-8])[A-Z0-9]{11,30}$`,
/// whose check digits are right (ISO 13616 mod-97 = 1).
fn iban_is_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    let [c1, c2, d1, d2, bban @ ..] = b else {
        return false;
    };
    if !(11..=30).contains(&bban.len())
        || !c1.is_ascii_uppercase()
        || !c2.is_ascii_uppercase()
        || !d1.is_ascii_digit()
        || !d2.is_ascii_digit()
        || !bban.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return false;
    }
    let check = u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0');
    if !(2..=98).contains(&check) {
        return false;
    }
    let remainder = bban.iter().chain([c1, c2, d1, d2]).fold(0u32, |rem, &c| {
        if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    remainder == 1
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil((y, m, d): (i64, u32, u32)) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------
// Deterministic history
// ---------------------------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, seeded per account.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.saturating_add_unsigned(self.next() % span)
    }
}

/// The generated history of one account.
fn generate_ledger(account: &Account) -> Ledger {
    struct Entry {
        day: i64,
        value_day: i64,
        cents: i64,
        name: &'static str,
        iban: &'static str,
        remittance: String,
    }

    let mut rng = SplitMix(account.seed);
    let mut entries: Vec<Entry> = Vec::new();
    let mut day = days_from_civil(HISTORY_START);
    let mut month = String::new();
    let salary = rng.between(SALARY.min_cents, SALARY.max_cents) / 100 * 100;

    while entries.len() < account.history_len {
        let date = format_day(day);
        let this_month = date.get(..7).unwrap_or_default().to_string();
        if this_month != month {
            let month_name = this_month.clone();
            month = this_month;
            match account.kind {
                Kind::Current => {
                    entries.push(Entry {
                        day,
                        value_day: day,
                        cents: salary,
                        name: SALARY.name,
                        iban: SALARY.iban,
                        remittance: format!("{} {month_name}", SALARY.remittance),
                    });
                    entries.push(Entry {
                        day,
                        value_day: day,
                        cents: RENT.min_cents,
                        name: RENT.name,
                        iban: RENT.iban,
                        remittance: format!("{} {month_name}", RENT.remittance),
                    });
                }
                Kind::Savings => {
                    entries.push(Entry {
                        day,
                        value_day: day,
                        cents: money(300, 0),
                        name: OWN_TRANSFER_NAME,
                        iban: account.linked_iban,
                        remittance: format!("Standing order {month_name}"),
                    });
                    entries.push(Entry {
                        day,
                        value_day: day,
                        cents: rng.between(money(4, 0), money(19, 0)),
                        name: INTEREST_NAME,
                        iban: INTEREST_IBAN,
                        remittance: format!("Interest credit {month_name}"),
                    });
                }
            }
        }
        match account.kind {
            Kind::Current => {
                let pick = rng.next() % CURRENT_TEMPLATES.len() as u64;
                let t = &CURRENT_TEMPLATES[usize::try_from(pick).unwrap_or_default()];
                let value_day = day + i64::from(rng.between(0, 3) == 0);
                entries.push(Entry {
                    day,
                    value_day,
                    cents: rng.between(t.min_cents, t.max_cents),
                    name: t.name,
                    iban: t.iban,
                    remittance: t.remittance.to_string(),
                });
            }
            Kind::Savings => {
                let (cents, remittance) = if rng.between(0, 4) == 0 {
                    (
                        -rng.between(money(50, 0), money(400, 0)),
                        "Transfer to current account",
                    )
                } else {
                    (rng.between(10, 99), "Round-up savings")
                };
                entries.push(Entry {
                    day,
                    value_day: day,
                    cents,
                    name: OWN_TRANSFER_NAME,
                    iban: account.linked_iban,
                    remittance: remittance.to_string(),
                });
            }
        }
        day += rng.between(1, 3);
    }

    let number = account.account_id.trim_start_matches("acc-");
    let closing_cents = account.opening_cents + entries.iter().map(|e| e.cents).sum::<i64>();
    let last_booking_date = entries
        .last()
        .map(|e| format_day(e.day))
        .unwrap_or_else(|| format_day(days_from_civil(HISTORY_START)));
    let transactions = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| Transaction {
            transaction_id: format!("txn-{number}-{:05}", i + 1),
            booking_date: format_day(e.day),
            value_date: format_day(e.value_day),
            amount: format_cents(e.cents),
            currency: account.currency,
            counterparty: Party {
                name: e.name.into(),
                iban: e.iban.into(),
            },
            remittance_information: e.remittance,
        })
        .rev()
        .collect();
    Ledger {
        transactions,
        closing_cents,
        last_booking_date,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{HeaderMap, Method, Request};
    use http_body_util::BodyExt;
    use std::collections::HashSet;
    use tower::ServiceExt;

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        text: String,
        json: Value,
    }

    impl Reply {
        fn header(&self, name: &str) -> &str {
            self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
        }
    }

    async fn send(app: &Router, request: Request<Body>) -> Reply {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    async fn get(app: &Router, uri: &str) -> Reply {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        send(app, request).await
    }

    async fn post_raw(app: &Router, content_type: Option<&str>, body: &str) -> Reply {
        let mut request = Request::post("/v1/payments");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        send(app, request.body(Body::from(body.to_string())).unwrap()).await
    }

    async fn post_payment(app: &Router, body: &Value) -> Reply {
        post_raw(app, Some("application/json"), &body.to_string()).await
    }

    fn good_payment() -> Value {
        json!({
            "debtor_account": "acc-1001",
            "instructed_amount": { "amount": "125.00", "currency": "EUR" },
            "creditor": { "name": "Max Beispiel", "iban": "DE89370400440532013000" },
            "remittance_information": "Invoice 2025-117"
        })
    }

    fn assert_leaky_headers(r: &Reply) {
        assert_eq!(r.header("server"), "demo-core-banking/1.0");
        assert_eq!(r.header("x-powered-by"), "DemoBank");
    }

    fn assert_problem(r: &Reply, status: u16, slug: &str) {
        assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.json["type"], format!("https://bank.example/problems/{slug}"));
        assert_eq!(r.json["status"], status);
        assert!(!r.json["title"].as_str().unwrap().is_empty());
        assert!(!r.json["detail"].as_str().unwrap().is_empty());
        assert_leaky_headers(r);
    }

    /// The pointers of the `errors` of a 422 invalid-payment problem.
    fn pointers(r: &Reply) -> Vec<String> {
        assert_problem(r, 422, "invalid-payment");
        r.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert!(!e["detail"].as_str().unwrap().is_empty());
                e["pointer"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Check digits computed independently of `iban_is_valid`: the decimal
    /// expansion of BBAN + country + "00", reduced mod 97 in 9-digit chunks.
    fn with_check_digits(country: &str, bban: &str) -> String {
        let digits: String = format!("{bban}{country}00")
            .chars()
            .map(|c| c.to_digit(36).unwrap().to_string())
            .collect();
        let mut rem: u64 = 0;
        for chunk in digits.as_bytes().chunks(7) {
            let part = std::str::from_utf8(chunk).unwrap();
            rem = format!("{rem}{part}").parse::<u64>().unwrap() % 97;
        }
        format!("{country}{:02}{bban}", 98 - rem)
    }

    fn all_seeded_ibans() -> Vec<&'static str> {
        let mut ibans: Vec<&str> = ACCOUNTS.iter().map(|a| a.iban).collect();
        ibans.extend(ACCOUNTS.iter().map(|a| a.linked_iban));
        ibans.extend(CURRENT_TEMPLATES.iter().map(|t| t.iban));
        ibans.extend([SALARY.iban, RENT.iban, INTEREST_IBAN]);
        ibans
    }

    /// `^-?(0|[1-9][0-9]*)\.[0-9]{2}$`, checked by hand.
    fn is_signed_decimal(s: &str) -> bool {
        let unsigned = s.strip_prefix('-').unwrap_or(s);
        let Some((int, frac)) = unsigned.split_once('.') else {
            return false;
        };
        frac.len() == 2
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && (int == "0" || !int.starts_with('0'))
    }

    fn signed_cents(s: &str) -> i64 {
        match s.strip_prefix('-') {
            Some(abs) => -parse_amount(abs).unwrap(),
            None => parse_amount(s).unwrap(),
        }
    }

    fn is_date(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    }

    /// Every transaction of an account, following the `next` links.
    async fn all_transactions(app: &Router, account: &str, page_size: u64) -> Vec<Value> {
        let mut items = Vec::new();
        let mut uri = format!("/v1/accounts/{account}/transactions?page=1&page_size={page_size}");
        loop {
            let r = get(app, &uri).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            items.extend(r.json["items"].as_array().unwrap().iter().cloned());
            match r.json["links"]["next"].as_str() {
                Some(next) => uri = next.to_string(),
                None => break,
            }
        }
        items
    }

    #[test]
    fn seeded_ibans_have_valid_check_digits() {
        for iban in all_seeded_ibans() {
            let recomputed = with_check_digits(&iban[..2], &iban[4..]);
            assert_eq!(recomputed, iban, "check digits of {iban}");
            assert!(iban_is_valid(iban), "{iban}");
        }
        // The well-known example IBANs agree with the independent computation.
        assert_eq!(
            with_check_digits("GB", "NWBK60161331926819"),
            "GB29NWBK60161331926819"
        );
        assert_eq!(
            with_check_digits("DE", "370400440532013000"),
            "DE89370400440532013000"
        );
    }

    #[test]
    fn iban_validation_rejects_bad_ibans() {
        for bad in [
            "",
            "DE",
            "DE89370400440532013001",              // wrong check digits
            "DE89370400440532031000",              // transposed digits
            "de89370400440532013000",              // lower case
            "DE89 3704 0044 0532 0130 00",         // spaces
            "DE8937040044053201300!",              // symbol
            "D189370400440532013000",              // digit in country code
            "DEAB370400440532013000",              // letters as check digits
            "NO9486011117947",                     // 15 chars, wrong check digits
            "DE0137040044053201300",               // check digits 01
            "XX99ABCDEFGHIJKLMNOPQRSTUVWXYZ12345", // too long
        ] {
            assert!(!iban_is_valid(bad), "{bad}");
        }
        assert!(iban_is_valid("NO9386011117947"));
        // 00 ≡ 97 and 01 ≡ 98 mod 97: only 02..=98 are valid check digits.
        let valid = with_check_digits("DE", "370400440532013000");
        assert!(iban_is_valid(&valid));
        let body = &valid[4..];
        for check in ["00", "01", "99"] {
            assert!(!iban_is_valid(&format!("DE{check}{body}")));
        }
    }

    #[test]
    fn amounts_parse_and_format() {
        for (text, cents) in [
            ("0", 0),
            ("0.5", 50),
            ("0.05", 5),
            ("125", 12_500),
            ("125.00", 12_500),
            ("1520.35", 152_035),
            ("999999999999999.99", 99_999_999_999_999_999),
        ] {
            assert_eq!(parse_amount(text), Some(cents), "{text}");
        }
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "01",
            "00.10",
            "1.234",
            "-1",
            "+1",
            "1,00",
            "1e3",
            " 1",
            "1 ",
            "abc",
            "1000000000000000",
            "１",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
        assert_eq!(format_cents(152_035), "1520.35");
        assert_eq!(format_cents(-4_210), "-42.10");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(-5), "-0.05");
        assert_eq!(format_cents(0), "0.00");
        assert!(is_signed_decimal(&format_cents(i64::MIN)));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil((1970, 1, 1)), 0);
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(days_from_civil((2000, 3, 1)), 11_017);
        assert_eq!(format_day(days_from_civil((2024, 2, 29))), "2024-02-29");
        assert_eq!(format_day(days_from_civil((2024, 2, 29)) + 1), "2024-03-01");
        assert_eq!(format_day(days_from_civil((2025, 12, 31)) + 1), "2026-01-01");
        let start = days_from_civil((2025, 1, 1));
        for d in start..start + 800 {
            let text = format_day(d);
            let y = text[..4].parse().unwrap();
            let m = text[5..7].parse().unwrap();
            let day = text[8..].parse().unwrap();
            assert_eq!(days_from_civil((y, m, day)), d, "{text}");
        }
    }

    #[test]
    fn slow_delay_defaults_and_caps() {
        assert_eq!(slow_delay(None).ok(), Some(Duration::from_millis(1_000)));
        assert_eq!(slow_delay(Some("0")).ok(), Some(Duration::ZERO));
        assert_eq!(slow_delay(Some("250")).ok(), Some(Duration::from_millis(250)));
        assert_eq!(
            slow_delay(Some("30001")).ok(),
            Some(Duration::from_millis(30_000))
        );
        assert_eq!(
            slow_delay(Some("99999999999999999999999")).ok(),
            Some(Duration::from_millis(30_000))
        );
        for bad in ["", "-1", "1.5", "abc", "1s"] {
            assert!(slow_delay(Some(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn lists_the_seeded_accounts() {
        let app = router();
        let r = get(&app, "/v1/accounts").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), "application/json");
        assert_leaky_headers(&r);
        let accounts = r.json["accounts"].as_array().unwrap();
        let ids: Vec<&str> = accounts
            .iter()
            .map(|a| a["account_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["acc-1001", "acc-1002", "acc-1003", "acc-1004", "acc-1005"]);
        let customers: HashSet<&str> = accounts
            .iter()
            .map(|a| a["customer_id"].as_str().unwrap())
            .collect();
        assert_eq!(customers, HashSet::from(["cust-001", "cust-002"]));
        for a in accounts {
            let obj = a.as_object().unwrap();
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "account_id",
                    "currency",
                    "customer_id",
                    "iban",
                    "name",
                    "owner_name",
                    "product",
                    "status"
                ]
            );
            assert!(iban_is_valid(a["iban"].as_str().unwrap()));
            assert!(is_currency_code(a["currency"].as_str().unwrap()));
            assert!(["Current account", "Savings"].contains(&a["name"].as_str().unwrap()));
            assert!(["enabled", "blocked"].contains(&a["status"].as_str().unwrap()));
        }
        assert_eq!(accounts[3]["currency"], "GBP");
        assert_eq!(accounts[4]["status"], "blocked");
    }

    #[tokio::test]
    async fn gets_one_account_or_404() {
        let app = router();
        let r = get(&app, "/v1/accounts/acc-1003").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_leaky_headers(&r);
        assert_eq!(r.json["account_id"], "acc-1003");
        assert_eq!(r.json["iban"], "FR1420041010050500013M02606");
        assert_eq!(r.json["customer_id"], "cust-002");

        for uri in [
            "/v1/accounts/acc-9999",
            "/v1/accounts/ACC-1001",
            "/v1/accounts/acc-1001%00",
            "/v1/accounts/%FF",
            "/v1/accounts/acc-9999/balances",
            "/v1/accounts/acc-9999/transactions",
            "/v1/accounts/acc-9999/transactions?page=0",
        ] {
            let r = get(&app, uri).await;
            assert_problem(&r, 404, "not-found");
        }
    }

    #[tokio::test]
    async fn balances_add_up_to_the_history() {
        let app = router();
        for account in ACCOUNTS.iter() {
            let id = account.account_id;
            let r = get(&app, &format!("/v1/accounts/{id}/balances")).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_leaky_headers(&r);
            assert_eq!(r.json["account_id"], id);
            assert_eq!(r.json["iban"], account.iban);
            let balances = r.json["balances"].as_array().unwrap();
            let types: Vec<&str> = balances
                .iter()
                .map(|b| b["balance_type"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["closingBooked", "interimAvailable"]);

            let items = all_transactions(&app, id, 100).await;
            let newest_date = items[0]["booking_date"].as_str().unwrap();
            let sum: i64 = items
                .iter()
                .map(|t| signed_cents(t["amount"].as_str().unwrap()))
                .sum();
            let closing = account.opening_cents + sum;
            for b in balances {
                let amount = b["balance_amount"]["amount"].as_str().unwrap();
                assert!(is_signed_decimal(amount), "{amount}");
                assert!(!amount.starts_with('-'), "{id} overdrawn: {amount}");
                assert_eq!(b["balance_amount"]["currency"], account.currency);
                assert_eq!(b["reference_date"], newest_date);
            }
            assert_eq!(
                signed_cents(balances[0]["balance_amount"]["amount"].as_str().unwrap()),
                closing
            );
            assert_eq!(
                signed_cents(balances[1]["balance_amount"]["amount"].as_str().unwrap()),
                closing - account.pending_cents
            );
        }
    }

    #[tokio::test]
    async fn transactions_are_paged_and_well_formed() {
        let app = router();
        let r = get(&app, "/v1/accounts/acc-1001/transactions").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_leaky_headers(&r);
        assert_eq!(r.json["account_id"], "acc-1001");
        assert_eq!(r.json["page"], 1);
        assert_eq!(r.json["page_size"], 20);
        let total = r.json["total_items"].as_u64().unwrap();
        assert!(total >= 60, "{total}");
        assert_eq!(r.json["total_pages"], total.div_ceil(20));
        assert_eq!(r.json["items"].as_array().unwrap().len(), 20);
        assert_eq!(
            r.json["links"]["self"],
            "/v1/accounts/acc-1001/transactions?page=1&page_size=20"
        );
        assert_eq!(
            r.json["links"]["next"],
            "/v1/accounts/acc-1001/transactions?page=2&page_size=20"
        );
        assert!(r.json["links"].get("prev").is_none());

        for account in ACCOUNTS.iter() {
            let id = account.account_id;
            let first = get(&app, &format!("/v1/accounts/{id}/transactions?page_size=7")).await;
            let total = first.json["total_items"].as_u64().unwrap();
            let pages = total.div_ceil(7);
            assert!(total >= 60);
            assert_eq!(first.json["total_pages"], pages);
            assert_eq!(
                first.json["links"]["last"],
                format!("/v1/accounts/{id}/transactions?page={pages}&page_size=7")
            );

            let items = all_transactions(&app, id, 7).await;
            assert_eq!(items.len() as u64, total);
            let ids: HashSet<&str> = items
                .iter()
                .map(|t| t["transaction_id"].as_str().unwrap())
                .collect();
            assert_eq!(ids.len() as u64, total, "transaction ids are unique");

            let last = get(
                &app,
                &format!("/v1/accounts/{id}/transactions?page={pages}&page_size=7"),
            )
            .await;
            assert_eq!(
                last.json["items"].as_array().unwrap().len() as u64,
                total - 7 * (pages - 1)
            );
            assert!(last.json["links"].get("next").is_none());
            assert_eq!(
                last.json["links"]["prev"],
                format!("/v1/accounts/{id}/transactions?page={}&page_size=7", pages - 1)
            );

            let mut previous_date = String::from("9999-12-31");
            for t in &items {
                let booking = t["booking_date"].as_str().unwrap();
                let value = t["value_date"].as_str().unwrap();
                assert!(is_date(booking) && is_date(value));
                assert!(value >= booking);
                assert!(booking <= previous_date.as_str(), "newest first");
                previous_date = booking.to_string();
                let amount = t["amount"].as_str().unwrap();
                assert!(is_signed_decimal(amount), "{amount}");
                assert_ne!(signed_cents(amount), 0);
                assert_eq!(t["currency"], account.currency);
                assert!(iban_is_valid(t["counterparty"]["iban"].as_str().unwrap()));
                assert!(!t["counterparty"]["name"].as_str().unwrap().is_empty());
                assert!(!t["remittance_information"].as_str().unwrap().is_empty());
                assert!(t["transaction_id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("txn-{}-", &id[4..])));
            }
        }
    }

    #[tokio::test]
    async fn transactions_are_deterministic() {
        let a = get(
            &router(),
            "/v1/accounts/acc-1002/transactions?page=2&page_size=50",
        )
        .await;
        let b = get(
            &router(),
            "/v1/accounts/acc-1002/transactions?page=2&page_size=50",
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.text, b.text);
        assert!(a.text.contains("Standing order"));
    }

    #[tokio::test]
    async fn page_beyond_the_end_is_empty() {
        let app = router();
        let r = get(
            &app,
            "/v1/accounts/acc-1001/transactions?page=999999999999&page_size=100",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.json["items"].as_array().unwrap().is_empty());
        assert!(r.json["links"].get("next").is_none());
        let pages = r.json["total_pages"].as_u64().unwrap();
        assert_eq!(
            r.json["links"]["prev"],
            format!("/v1/accounts/acc-1001/transactions?page={pages}&page_size=100")
        );
        let r = get(
            &app,
            "/v1/accounts/acc-1001/transactions?page=01&page_size=100&extra=1",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["page"], 1);
    }

    #[tokio::test]
    async fn bad_paging_is_400() {
        let app = router();
        for query in [
            "page=0",
            "page=abc",
            "page=-1",
            "page=",
            "page=1.5",
            "page=%2B1",
            "page_size=0",
            "page_size=101",
            "page_size=abc",
            "page_size=",
            "page_size=99999999999999999999999",
            "page=1&page=2",
        ] {
            let r = get(&app, &format!("/v1/accounts/acc-1001/transactions?{query}")).await;
            assert_problem(&r, 400, "invalid-request");
        }
        let r = get(&app, "/v1/accounts/acc-1001/transactions?page_size=100").await;
        assert_eq!(r.status, StatusCode::OK);
        let total = r.json["total_items"].as_u64().unwrap();
        assert_eq!(r.json["items"].as_array().unwrap().len() as u64, total.min(100));
    }

    #[tokio::test]
    async fn payment_create_then_get() {
        let bank = Bank::new();
        let app = router_with(Arc::clone(&bank));
        let r = post_payment(&app, &good_payment()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_leaky_headers(&r);
        assert_eq!(r.header("content-type"), "application/json");
        let id = r.json["payment_id"].as_str().unwrap().to_string();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        assert_eq!(r.header("location"), format!("/v1/payments/{id}"));
        assert_eq!(r.json["status"], "ACSC");
        assert_eq!(r.json["debtor_account"], "acc-1001");
        assert_eq!(r.json["debtor_iban"], "DE18200411330012345678");
        assert_eq!(
            r.json["instructed_amount"],
            json!({ "amount": "125.00", "currency": "EUR" })
        );
        assert_eq!(
            r.json["creditor"],
            json!({ "name": "Max Beispiel", "iban": "DE89370400440532013000" })
        );
        assert_eq!(r.json["remittance_information"], "Invoice 2025-117");
        let created = r.json["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
        humantime::parse_rfc3339(created).unwrap();

        let again = get(&app, &format!("/v1/payments/{id}")).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_leaky_headers(&again);
        assert_eq!(again.json, r.json);

        // A second payment gets another id; amounts are normalised; large
        // amounts are only received; remittance information is optional.
        let mut body = good_payment();
        body["instructed_amount"]["amount"] = json!("10000.5");
        body.as_object_mut().unwrap().remove("remittance_information");
        body["debtor_account"] = json!("acc-1003");
        let r2 = post_payment(&app, &body).await;
        assert_eq!(r2.status, StatusCode::CREATED, "{}", r2.text);
        assert_ne!(r2.json["payment_id"], r.json["payment_id"]);
        assert_eq!(r2.json["instructed_amount"]["amount"], "10000.50");
        assert_eq!(r2.json["status"], "RCVD");
        assert!(r2.json.get("remittance_information").is_none());

        let mut body = good_payment();
        body["instructed_amount"] = json!({ "amount": "10000", "currency": "EUR" });
        let r3 = post_payment(&app, &body).await;
        assert_eq!(r3.json["status"], "ACSC");
        assert_eq!(r3.json["instructed_amount"]["amount"], "10000.00");

        // GBP account pays in GBP.
        let mut body = good_payment();
        body["debtor_account"] = json!("acc-1004");
        body["instructed_amount"] = json!({ "amount": "0.01", "currency": "GBP" });
        body["creditor"]["iban"] = json!("GB29NWBK60161331926819");
        let r4 = post_payment(&app, &body).await;
        assert_eq!(r4.status, StatusCode::CREATED, "{}", r4.text);
        assert_eq!(bank.payments().len(), 4);
    }

    #[tokio::test]
    async fn unknown_payment_is_404() {
        let app = router();
        for uri in [
            "/v1/payments/00000000-0000-4000-8000-000000000000",
            "/v1/payments/not-a-uuid",
            "/v1/payments/%FF",
        ] {
            let r = get(&app, uri).await;
            assert_problem(&r, 404, "not-found");
        }
    }

    #[tokio::test]
    async fn invalid_payments_are_422_with_pointers() {
        let app = router();
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/debtor_account", json!("acc-9999"), "#/debtor_account"),
            ("/debtor_account", json!("acc-1005"), "#/debtor_account"),
            (
                "/instructed_amount/amount",
                json!("0"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("0.00"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("-5.00"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("1.234"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("01.00"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("12,50"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!(""),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/amount",
                json!("1000000000000000.00"),
                "#/instructed_amount/amount",
            ),
            (
                "/instructed_amount/currency",
                json!("eur"),
                "#/instructed_amount/currency",
            ),
            (
                "/instructed_amount/currency",
                json!("EURO"),
                "#/instructed_amount/currency",
            ),
            (
                "/instructed_amount/currency",
                json!("USD"),
                "#/instructed_amount/currency",
            ),
            ("/creditor/name", json!(""), "#/creditor/name"),
            ("/creditor/name", json!("   "), "#/creditor/name"),
            ("/creditor/name", json!("x".repeat(71)), "#/creditor/name"),
            ("/creditor/name", json!("Max\nBeispiel"), "#/creditor/name"),
            (
                "/creditor/iban",
                json!("DE89370400440532013001"),
                "#/creditor/iban",
            ),
            (
                "/creditor/iban",
                json!("DE89 3704 0044 0532 0130 00"),
                "#/creditor/iban",
            ),
            (
                "/creditor/iban",
                json!("de89370400440532013000"),
                "#/creditor/iban",
            ),
            ("/creditor/iban", json!(""), "#/creditor/iban"),
            (
                "/remittance_information",
                json!("r".repeat(141)),
                "#/remittance_information",
            ),
            (
                "/remittance_information",
                json!("a\u{7}b"),
                "#/remittance_information",
            ),
        ];
        for (path, value, pointer) in cases {
            let mut body = good_payment();
            *body.pointer_mut(path).unwrap() = value.clone();
            let r = post_payment(&app, &body).await;
            assert_eq!(pointers(&r), [pointer], "{path} = {value}");
        }

        // Limits are inclusive and count characters, not bytes.
        let mut body = good_payment();
        body["creditor"]["name"] = json!("é".repeat(70));
        body["remittance_information"] = json!("ü".repeat(140));
        let r = post_payment(&app, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

        // Every problem is reported at once.
        let body = json!({
            "debtor_account": "acc-1002",
            "instructed_amount": { "amount": "abc", "currency": "GBP" },
            "creditor": { "name": "", "iban": "XX00" },
            "remittance_information": "x".repeat(200)
        });
        let r = post_payment(&app, &body).await;
        assert_eq!(
            pointers(&r),
            [
                "#/instructed_amount/amount",
                "#/instructed_amount/currency",
                "#/creditor/name",
                "#/creditor/iban",
                "#/remittance_information"
            ]
        );
    }

    #[tokio::test]
    async fn malformed_payment_bodies_are_problems() {
        let app = router();
        let json_ct = Some("application/json");
        for body in [
            "",
            "{",
            "not json",
            "{\"debtor_account\": }",
            "{\"debtor_account\": \"acc-1001\"",
        ] {
            let r = post_raw(&app, json_ct, body).await;
            assert_problem(&r, 400, "malformed-json");
        }
        let mut wrong_types = good_payment();
        wrong_types["instructed_amount"]["amount"] = json!(125.0);
        let mut missing = good_payment();
        missing["creditor"].as_object_mut().unwrap().remove("iban");
        let mut unknown = good_payment();
        unknown["ultimate_debtor"] = json!("x");
        let mut unknown_nested = good_payment();
        unknown_nested["creditor"]["bic"] = json!("DEUTDEFF");
        let mut null_remittance = good_payment();
        null_remittance["remittance_information"] = Value::Null;
        for body in [
            wrong_types,
            missing,
            unknown,
            unknown_nested,
            null_remittance,
            json!([]),
            json!("payment"),
            json!(null),
        ] {
            let r = post_payment(&app, &body).await;
            assert_problem(&r, 400, "invalid-request");
        }
        let body = good_payment().to_string();
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let r = post_raw(&app, ct, &body).await;
            assert_problem(&r, 415, "unsupported-media-type");
        }
        let r = post_raw(&app, Some("application/json; charset=utf-8"), &body).await;
        assert_eq!(r.status, StatusCode::CREATED);

        let huge = format!(
            "{{\"debtor_account\":\"acc-1001\",\"pad\":\"{}\"}}",
            "x".repeat(3 * 1024 * 1024)
        );
        let r = post_raw(&app, json_ct, &huge).await;
        assert_problem(&r, 413, "payload-too-large");
    }

    #[tokio::test]
    async fn payment_store_is_bounded() {
        let bank = Bank::new();
        let app = router_with(Arc::clone(&bank));
        let first = post_payment(&app, &good_payment()).await;
        assert_eq!(first.status, StatusCode::CREATED);
        {
            let mut payments = bank.payments();
            let template = payments.values().next().unwrap().clone();
            while payments.len() < MAX_PAYMENTS {
                let id = format!("filler-{}", payments.len());
                payments.insert(
                    id.clone(),
                    Payment {
                        payment_id: id,
                        ..template.clone()
                    },
                );
            }
        }
        let r = post_payment(&app, &good_payment()).await;
        assert_problem(&r, 503, "capacity-exceeded");
        assert_eq!(bank.payments().len(), MAX_PAYMENTS);
        // Stored payments stay readable.
        let id = first.json["payment_id"].as_str().unwrap();
        let r = get(&app, &format!("/v1/payments/{id}")).await;
        assert_eq!(r.status, StatusCode::OK);
        // Validation still comes first.
        let mut bad = good_payment();
        bad["debtor_account"] = json!("acc-0000");
        let r = post_payment(&app, &bad).await;
        assert_eq!(pointers(&r), ["#/debtor_account"]);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_problems() {
        let app = router();
        for uri in [
            "/",
            "/v1",
            "/v1/accounts/",
            "/v2/accounts",
            "/v1/accounts/acc-1001/cards",
            "/v1/payments/x/status",
            "/admin",
            "/../etc/passwd",
        ] {
            let r = get(&app, uri).await;
            assert_problem(&r, 404, "not-found");
        }
        for (method, uri, allow) in [
            (Method::DELETE, "/v1/accounts", "GET,HEAD"),
            (Method::POST, "/v1/accounts/acc-1001", "GET,HEAD"),
            (Method::GET, "/v1/payments", "POST"),
            (Method::PUT, "/v1/payments/abc", "GET,HEAD"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let r = send(&app, request).await;
            assert_problem(&r, 405, "method-not-allowed");
            assert_eq!(r.header("allow"), allow);
        }
    }

    #[tokio::test]
    async fn debug_fail_leaks_a_stack_trace() {
        let r = get(&router(), "/v1/debug/fail").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_leaky_headers(&r);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.json["status"], 500);
        let trace = r.json["trace"].as_str().unwrap();
        assert!(trace.contains("at com.bank.core.PaymentService.process(PaymentService.java:42)"));
        assert!(r.text.contains("core-db-01.internal.bank.example"));
        humantime::parse_rfc3339(r.json["timestamp"].as_str().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn debug_slow_sleeps_then_answers() {
        let app = router();
        let started = std::time::Instant::now();
        let r = get(&app, "/v1/debug/slow?ms=30").await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(r.status, StatusCode::OK);
        assert_leaky_headers(&r);
        assert_eq!(r.json, json!({ "slept_ms": 30 }));
        for query in ["ms=abc", "ms=-1", "ms=", "ms=1&ms=2"] {
            let r = get(&app, &format!("/v1/debug/slow?{query}")).await;
            assert_problem(&r, 400, "invalid-request");
        }
    }
}
