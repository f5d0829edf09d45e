//! The call grammars compiled by llguidance over a byte-level vocabulary (every byte a
//! token, plus `[TOOL_CALLS]` as a special token and an end-of-sequence token): the real
//! template outputs are accepted whole, calls that break the syntax or the schema are not,
//! and the accepted texts parse back into the same calls.

use std::sync::Arc;

use jikji_toolcall::grammar::{call_grammar, Thinking};
use jikji_toolcall::{parse, parse_tools, Family, Tool, ToolChoice};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::json;
use toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie, TokenId};

const SPECIAL_TOOL_CALLS: TokenId = 256;
const EOS: TokenId = 257;

fn factory() -> ParserFactory {
    let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    words.push(b"\xFF[TOOL_CALLS]".to_vec());
    words.push(b"\xFF</s>".to_vec());
    let info = TokRxInfo { vocab_size: words.len() as u32, tok_eos: EOS, tok_bos: None, tok_pad: None, tok_unk: None, tok_end_of_turn: None };
    let env: toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
    let mut f = ParserFactory::new_simple(&env).expect("factory");
    f.quiet();
    f
}

fn tools() -> Vec<Tool> {
    parse_tools(Some(&json!([
        {"type": "function", "function": {"name": "get_weather", "description": "현재 날씨", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"], "additionalProperties": false}}}
    ])))
    .expect("valid tools")
}

fn special_for(family: Family) -> impl Fn(&str) -> Option<u32> {
    move |t: &str| (family == Family::Mistral && t == "[TOOL_CALLS]").then_some(SPECIAL_TOOL_CALLS)
}

fn tokens(text: &str) -> Vec<TokenId> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[TOOL_CALLS]") {
            out.push(SPECIAL_TOOL_CALLS);
            rest = r;
            continue;
        }
        let c = rest.chars().next().expect("non-empty");
        let mut buf = [0u8; 4];
        out.extend(c.encode_utf8(&mut buf).bytes().map(TokenId::from));
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn matcher(f: &ParserFactory, grammar: &str) -> Matcher {
    let parser = f.create_parser(TopLevelGrammar::from_lark(grammar.to_string())).unwrap_or_else(|e| panic!("{e}\n{grammar}"));
    let m = Matcher::new(Ok(parser));
    assert!(m.get_error().is_none(), "{:?}\n{grammar}", m.get_error());
    m
}

/// Whether the grammar takes the whole text and may end there.
fn accepts(f: &ParserFactory, grammar: &str, text: &str) -> bool {
    let mut m = matcher(f, grammar);
    let toks = tokens(text);
    match m.validate_tokens(&toks) {
        Ok(n) if n == toks.len() => {}
        _ => return false,
    }
    m.consume_tokens(&toks).expect("validated");
    m.is_accepting().unwrap_or(false)
}

fn grammar(family: Family, choice: &ToolChoice, parallel: bool) -> String {
    call_grammar(family, &tools(), choice, parallel, Thinking::Off, &special_for(family)).expect("a grammar")
}

/// Real outputs per family (as its template renders calls), one call and two.
fn outputs(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::Hermes => (
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}\n</tool_call>",
        ),
        Family::Exaone4 => (
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}</tool_call>",
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}</tool_call>\n<tool_call>{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}</tool_call>",
        ),
        Family::Llama3 => ("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}", ""),
        Family::DeepSeekV3 => (
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Seoul\", \"unit\": \"celsius\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Seoul\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"Asia/Seoul\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        ),
        Family::DeepSeekR1 => (
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Seoul\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Seoul\"}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"Asia/Seoul\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        ),
        Family::Mistral => (
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}]",
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}]",
        ),
        Family::Generic => (
            "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\", \"unit\": \"celsius\"}}]}",
            "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"Asia/Seoul\"}}]}",
        ),
    }
}

const FAMILIES: [Family; 7] =
    [Family::Hermes, Family::Exaone4, Family::Llama3, Family::DeepSeekV3, Family::DeepSeekR1, Family::Mistral, Family::Generic];

#[test]
fn required_grammars_accept_each_familys_real_calls_and_they_parse_back() {
    let f = factory();
    let names: Vec<String> = tools().iter().map(|t| t.name.clone()).collect();
    for family in FAMILIES {
        let (one, two) = outputs(family);
        let single = grammar(family, &ToolChoice::Required, false);
        assert!(accepts(&f, &single, one), "{family:?} one call\n{single}");
        let parsed = parse(family, &names, 1, one);
        assert_eq!(parsed.calls.len(), 1, "{family:?}");
        assert_eq!(parsed.calls[0].name, "get_weather");
        let args: serde_json::Value = serde_json::from_str(&parsed.calls[0].arguments).expect("JSON arguments");
        assert_eq!(args, json!({"city": "Seoul", "unit": "celsius"}));
        if !two.is_empty() {
            let many = grammar(family, &ToolChoice::Required, true);
            assert!(accepts(&f, &many, two), "{family:?} two calls\n{many}");
            assert!(!accepts(&f, &single, two), "{family:?}: without parallel_tool_calls, one call only");
            assert_eq!(parse(family, &names, 1, two).calls.len(), 2, "{family:?}");
        }
    }
}

#[test]
fn required_grammars_refuse_broken_syntax_unknown_names_and_bad_arguments() {
    let f = factory();
    for family in FAMILIES {
        let g = grammar(family, &ToolChoice::Required, true);
        let (one, _) = outputs(family);
        for bad in [
            one.replace("get_weather", "get_wether"),
            one.replace("\"Seoul\"", "5"),
            one.replace("celsius", "kelvin"),
            one.replace("\"city\": \"Seoul\", ", "\"country\": \"KR\", "),
            format!("Sure! {one}"),
            one[..one.len() - 1].to_string(),
        ] {
            assert!(!accepts(&f, &g, &bad), "{family:?} accepted {bad:?}");
        }
    }
}

#[test]
fn named_choice_allows_one_call_of_only_that_function() {
    let f = factory();
    for family in FAMILIES {
        let g = grammar(family, &ToolChoice::Named("get_time".into()), false);
        let (one, _) = outputs(family);
        assert!(!accepts(&f, &g, one), "{family:?}");
        let time = one.replace("get_weather", "get_time").replace("\"city\": \"Seoul\", \"unit\": \"celsius\"", "\"tz\": \"UTC\"");
        assert!(accepts(&f, &g, &time), "{family:?}: {time}\n{g}");
    }
}

#[test]
fn auto_grammars_leave_text_free_until_the_opening_then_force_a_valid_call() {
    let f = factory();
    for family in FAMILIES {
        let g = call_grammar(family, &tools(), &ToolChoice::Auto, true, Thinking::Off, &special_for(family)).expect("a grammar");
        let (one, two) = outputs(family);
        assert!(accepts(&f, &g, "서울은 맑습니다. It is 21 C.\n\nAnything else?"), "{family:?} free text\n{g}");
        assert!(accepts(&f, &g, ""), "{family:?}: an empty answer");
        assert!(accepts(&f, &g, one), "{family:?}: a call\n{g}");
        assert!(accepts(&f, &g, &format!("<think>\nWeather.\n</think>\n\n{one}")), "{family:?}: thought, then a call\n{g}");
        if !two.is_empty() {
            assert!(accepts(&f, &g, two), "{family:?}: two calls");
        }
        if family.opening().is_some() {
            assert!(accepts(&f, &g, &format!("Let me check the weather.\n{one}")), "{family:?}: text then a call");
            assert!(!accepts(&f, &g, &format!("Let me check. {}", one.replace("get_weather", "get_wether"))), "{family:?}");
        }
    }
}

#[test]
fn auto_grammars_constrain_a_reply_that_starts_as_a_call_object() {
    let f = factory();
    let bare = |key: &str, args: &str| format!("{{\"name\": \"get_weather\", \"{key}\": {args}}}");
    for (family, key) in [(Family::Hermes, "arguments"), (Family::Exaone4, "arguments"), (Family::Llama3, "parameters")] {
        let g = call_grammar(family, &tools(), &ToolChoice::Auto, true, Thinking::Off, &special_for(family)).expect("a grammar");
        assert!(accepts(&f, &g, &bare(key, r#"{"city": "Seoul"}"#)), "{family:?}\n{g}");
        assert!(accepts(&f, &g, &format!("\n{}", bare(key, r#"{"city": "Seoul", "unit": "celsius"}"#))), "{family:?}");
        // Once the start names an offered tool, the arguments must validate.
        assert!(!accepts(&f, &g, &bare(key, r#"{"city": "Seoul", "unit": "kelvin"}"#)), "{family:?}");
        assert!(!accepts(&f, &g, &bare(key, r#"{"town": "Seoul"}"#)), "{family:?}");
        // Other JSON, or the object later in the text, stays free.
        assert!(accepts(&f, &g, r#"{"name": "Kim", "age": 31}"#), "{family:?}");
        assert!(accepts(&f, &g, &format!("As JSON: {}", bare(key, r#"{"town": 1}"#))), "{family:?}");
        let names: Vec<String> = tools().iter().map(|t| t.name.clone()).collect();
        assert_eq!(parse(family, &names, 1, &bare(key, r#"{"city": "Seoul"}"#)).calls.len(), 1, "{family:?}");
    }
    let g = call_grammar(Family::Generic, &tools(), &ToolChoice::Auto, true, Thinking::Off, &|_: &str| None).expect("a grammar");
    let (_, two) = outputs(Family::Generic);
    assert!(accepts(&f, &g, two), "{g}");
    assert!(!accepts(&f, &g, &two[..two.len() - 2]), "an unclosed call object\n{g}");
    assert!(!accepts(&f, &g, r#"{"tool_calls": [{"name": "get_wether", "arguments": {}}]}"#), "{g}");
}

#[test]
fn forced_calls_may_follow_a_reasoning_block_only_when_the_model_thinks() {
    let f = factory();
    let thought = "The user wants Seoul's weather.\nOne call </thin does it.";
    for family in FAMILIES {
        let (one, _) = outputs(family);
        let g = |t: Thinking| call_grammar(family, &tools(), &ToolChoice::Required, false, t, &special_for(family)).expect("a grammar");
        let (off, may, open) = (g(Thinking::Off), g(Thinking::May), g(Thinking::Open));
        let opened = format!("<think>\n{thought}\n</think>\n\n{one}");
        let inside = format!("{thought}\n</think>\n\n{one}");
        assert!(accepts(&f, &may, one), "{family:?}: thinking is optional\n{may}");
        assert!(accepts(&f, &may, &opened), "{family:?}: a thought, then the call\n{may}");
        assert!(!accepts(&f, &may, &format!("<think>{thought}</think>\n\nSure, here you go.")), "{family:?}: still a call");
        assert!(!accepts(&f, &may, &format!("<think>{thought}")), "{family:?}: an unclosed thought is no call");
        assert!(!accepts(&f, &off, &opened), "{family:?}: no thought when the prompt closed it");
        assert!(accepts(&f, &open, &inside), "{family:?}: the prompt opened the thought\n{open}");
        assert!(!accepts(&f, &open, one), "{family:?}: the reply starts inside the thought");
        let names: Vec<String> = tools().iter().map(|t| t.name.clone()).collect();
        assert_eq!(parse(family, &names, 1, &inside[inside.find("</think>").expect("closed") + 8..]).calls.len(), 1);
    }
}

#[test]
fn thinking_is_read_from_the_template_and_the_end_of_the_prompt() {
    let qwen3 = "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}";
    assert_eq!(Thinking::for_prompt(qwen3, "<|im_start|>assistant\n"), Thinking::May);
    assert_eq!(Thinking::for_prompt(qwen3, "<|im_start|>assistant\n<think>\n\n</think>\n\n"), Thinking::Off);
    assert_eq!(Thinking::for_prompt(qwen3, "[|assistant|]<think>\n"), Thinking::Open);
    assert_eq!(Thinking::for_prompt("{{ messages }}", "<|im_start|>assistant\n"), Thinking::Off);
}
