//! Chat templates: byte-exact renderings against the reference fixtures (templates read
//! from the real models' GGUF metadata), well-known templates of other families rendered
//! for two-turn conversations (expected strings worked out by hand from the templates'
//! semantics), the built-in fallbacks, Python-compatible helpers, and the sandbox.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jikji_gguf::{GgufFile, GgufWriter};
use jikji_testkit::fixtures_dir;
use jikji_tokenizer::chat::{
    builtin, fallback_for_arch, strftime_utc, ChatTemplate, ChatTemplateError, TemplateOrigin,
};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------
// Helpers

/// The real model file, or `None` when `JIKJI_SKIP_REAL_MODELS=1`. A missing file is a
/// failure with instructions (`jikji pull {pull_name}`), not a silent skip.
fn real_model(file: &str, pull_name: &str) -> Option<PathBuf> {
    assert_eq!(jikji_testkit::catalog_name(file), pull_name, "testkit's pull name for {file}");
    jikji_testkit::real_model(file)
}

/// What a chat test needs from a GGUF file.
struct ModelChatInfo {
    architecture: String,
    template: Option<String>,
    bos: String,
    eos: String,
}

fn read_chat_info(path: &PathBuf) -> ModelChatInfo {
    let file = GgufFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tokens = file
        .get_str_array("tokenizer.ggml.tokens")
        .expect("tokenizer.ggml.tokens has the wrong type")
        .expect("tokenizer.ggml.tokens is missing");
    let token = |key: &str| {
        let id = file
            .get_u32(key)
            .expect("token id has the wrong type")
            .expect("token id missing");
        tokens[id as usize].to_owned()
    };
    ModelChatInfo {
        architecture: file
            .get_str("general.architecture")
            .expect("general.architecture type")
            .expect("general.architecture missing")
            .to_owned(),
        template: file
            .get_str("tokenizer.chat_template")
            .expect("tokenizer.chat_template has the wrong type")
            .map(str::to_owned),
        bos: token("tokenizer.ggml.bos_token_id"),
        eos: token("tokenizer.ggml.eos_token_id"),
    }
}

fn reference_cases(stem: &str) -> Vec<Value> {
    let path = fixtures_dir()
        .join("reference")
        .join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Value = serde_json::from_str(&text).expect("reference fixture is JSON");
    fixture["chat_template"]
        .as_array()
        .expect("chat_template is an array")
        .clone()
}

/// Renders every `chat_template` entry of the fixture and compares byte for byte.
fn assert_reference_renderings(model_file: &str, pull_name: &str, stem: &str) {
    let cases = reference_cases(stem);
    assert!(
        !cases.is_empty(),
        "{stem}: the fixture has no chat_template cases"
    );
    let Some(path) = real_model(model_file, pull_name) else {
        return;
    };
    let info = read_chat_info(&path);
    let source = info
        .template
        .expect("the model has a tokenizer.chat_template");
    let template = ChatTemplate::new(&source, &info.bos, &info.eos).expect("template compiles");
    for (i, case) in cases.iter().enumerate() {
        let add = case["add_generation_prompt"]
            .as_bool()
            .expect("add_generation_prompt");
        let rendered = template
            .render(&case["messages"], add, None)
            .expect("renders");
        assert_eq!(
            rendered,
            case["rendered"].as_str().expect("rendered"),
            "{stem} case {i}"
        );
    }
}

fn render(source: &str, bos: &str, eos: &str, messages: &Value, extra: Option<Value>) -> String {
    let template = ChatTemplate::new(source, bos, eos).expect("template compiles");
    let extra: Option<Map<String, Value>> = extra.map(|v| v.as_object().expect("object").clone());
    template
        .render(messages, true, extra.as_ref())
        .expect("renders")
}

/// Renders a template that must fail, within `limit`, and returns the error.
fn render_err_within(source: &str, messages: &Value, limit: Duration) -> ChatTemplateError {
    let template = ChatTemplate::new(source, "<s>", "</s>").expect("template compiles");
    let start = Instant::now();
    let result = template.render(messages, true, None);
    let elapsed = start.elapsed();
    assert!(elapsed < limit, "render took {elapsed:?} (limit {limit:?})");
    match result {
        Ok(out) => panic!("expected an error, rendered {} bytes", out.len()),
        Err(e) => e,
    }
}

fn hello() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn two_turns() -> Value {
    json!([
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"}
    ])
}

// ---------------------------------------------------------------------------------------
// Real models: templates read from GGUF metadata, byte-exact against the reference

#[test]
fn smollm2_gguf_template_renders_reference_conversations_byte_exact() {
    assert_reference_renderings(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m",
        "SmolLM2-135M-Instruct.Q4_1",
    );
}

#[test]
fn qwen2_5_gguf_template_renders_reference_conversations_byte_exact() {
    assert_reference_renderings(
        "qwen2.5-coder-0.5b-instruct.gguf",
        "qwen2.5-0.5b",
        "qwen2.5-coder-0.5b-instruct",
    );
}

#[test]
fn qwen2_5_gguf_template_renders_tools_and_tool_calls_with_python_json() {
    let Some(path) = real_model("qwen2.5-coder-0.5b-instruct.gguf", "qwen2.5-0.5b") else {
        return;
    };
    let info = read_chat_info(&path);
    let source = info.template.expect("template");
    let messages = json!([
        {"role": "user", "content": "서울 날씨?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "서울", "days": 1}}}
        ]},
        {"role": "tool", "content": "{\"temp\": 20}"}
    ]);
    let extra = json!({"tools": [weather_tool()]});
    let expected = concat!(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n",
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
        r#"{"type": "function", "function": {"name": "get_weather", "description": "도시의 날씨", "#,
        r#""parameters": {"type": "object", "properties": {"city": {"type": "string"}, "#,
        r#""days": {"type": "integer"}}, "required": ["city"]}}}"#,
        "\n</tools>\n\nFor each function call, return a json object with function name and ",
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n",
        "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n",
        "<|im_start|>user\n서울 날씨?<|im_end|>\n",
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ",
        "{\"city\": \"서울\", \"days\": 1}}\n</tool_call><|im_end|>\n",
        "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>\n",
        "<|im_start|>assistant\n",
    );
    assert_eq!(
        render(&source, &info.bos, &info.eos, &messages, Some(extra)),
        expected
    );
}

#[test]
fn gemma3_gguf_has_no_template_and_falls_back_to_builtin_gemma_turns() {
    let Some(path) = real_model("gemma-3-270m-q4_k_m.gguf", "gemma3-270m") else {
        return;
    };
    let info = read_chat_info(&path);
    assert_eq!(
        info.template, None,
        "the fixture's gemma GGUF carries no chat template"
    );
    assert!(reference_cases("gemma-3-270m-q4_k_m").is_empty());
    assert_eq!(info.architecture, "gemma3");
    let source = fallback_for_arch(&info.architecture);
    assert_eq!(Some(source), builtin("gemma"));
    let messages = json!([
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "  Capital of Korea?\n"},
        {"role": "assistant", "content": "Seoul"},
        {"role": "user", "content": "And of Japan?"}
    ]);
    let expected = concat!(
        "<bos><start_of_turn>user\nAnswer in one word.\n\nCapital of Korea?<end_of_turn>\n",
        "<start_of_turn>model\nSeoul<end_of_turn>\n",
        "<start_of_turn>user\nAnd of Japan?<end_of_turn>\n",
        "<start_of_turn>model\n",
    );
    assert_eq!(
        render(source, &info.bos, &info.eos, &messages, None),
        expected
    );
}

#[test]
fn from_gguf_reads_template_and_token_strings_of_real_models() {
    let cases = [
        (
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "smollm2-135m",
            TemplateOrigin::Gguf,
        ),
        (
            "qwen2.5-coder-0.5b-instruct.gguf",
            "qwen2.5-0.5b",
            TemplateOrigin::Gguf,
        ),
        (
            "gemma-3-270m-q4_k_m.gguf",
            "gemma3-270m",
            TemplateOrigin::Builtin("gemma"),
        ),
    ];
    for (file, pull, origin) in cases {
        let Some(path) = real_model(file, pull) else {
            return;
        };
        let info = read_chat_info(&path);
        let gguf = GgufFile::open(&path).expect("opens");
        let template = ChatTemplate::from_gguf(&gguf).expect("template from GGUF");
        assert_eq!(template.origin(), origin, "{file}");
        assert_eq!(
            (template.bos_token(), template.eos_token()),
            (&*info.bos, &*info.eos),
            "{file}"
        );
        let source = info
            .template
            .as_deref()
            .unwrap_or_else(|| fallback_for_arch(&info.architecture));
        let direct = ChatTemplate::new(source, &info.bos, &info.eos).expect("compiles");
        assert_eq!(
            template.render(&two_turns(), true, None).expect("renders"),
            direct.render(&two_turns(), true, None).expect("renders"),
            "{file}"
        );
    }
}

fn tiny_gguf(kvs: Vec<(&str, jikji_gguf::Value)>) -> GgufFile {
    let mut w = GgufWriter::new();
    for (key, value) in kvs {
        w.add_kv(key, value);
    }
    GgufFile::from_bytes(w.to_bytes().expect("encodes")).expect("parses")
}

fn tokens(list: &[&str]) -> jikji_gguf::Value {
    jikji_gguf::Value::Array(
        list.iter()
            .map(|t| jikji_gguf::Value::String((*t).into()))
            .collect(),
    )
}

#[test]
fn from_gguf_treats_a_builtin_name_as_that_template_and_falls_back_by_architecture() {
    let named = tiny_gguf(vec![
        ("general.architecture", "llama".into()),
        ("tokenizer.chat_template", "chatml".into()),
        ("tokenizer.ggml.tokens", tokens(&["<s>", "</s>"])),
        ("tokenizer.ggml.bos_token_id", 0u32.into()),
        ("tokenizer.ggml.eos_token_id", 1u32.into()),
    ]);
    let template = ChatTemplate::from_gguf(&named).expect("template");
    assert_eq!(template.origin(), TemplateOrigin::Builtin("chatml"));
    assert_eq!(
        template.render(&hello(), true, None).expect("renders"),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );

    let gemma = tiny_gguf(vec![
        ("general.architecture", "gemma2".into()),
        (
            "tokenizer.ggml.tokens",
            tokens(&["<pad>", "<eos>", "<bos>"]),
        ),
        ("tokenizer.ggml.bos_token_id", 2u32.into()),
        ("tokenizer.ggml.eos_token_id", 1u32.into()),
    ]);
    let template = ChatTemplate::from_gguf(&gemma).expect("template");
    assert_eq!(template.origin(), TemplateOrigin::Builtin("gemma"));
    assert_eq!(
        template.render(&hello(), true, None).expect("renders"),
        "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    );

    let bare = tiny_gguf(vec![("general.architecture", "qwen3".into())]);
    let template = ChatTemplate::from_gguf(&bare).expect("template");
    assert_eq!(template.origin(), TemplateOrigin::Builtin("chatml"));
    assert_eq!((template.bos_token(), template.eos_token()), ("", ""));
}

#[test]
fn from_gguf_rejects_bad_token_metadata() {
    let out_of_range = tiny_gguf(vec![
        ("tokenizer.ggml.tokens", tokens(&["<s>"])),
        ("tokenizer.ggml.bos_token_id", 7u32.into()),
    ]);
    match ChatTemplate::from_gguf(&out_of_range) {
        Err(ChatTemplateError::Metadata(msg)) => assert!(msg.contains("out of range"), "{msg}"),
        other => panic!("expected a metadata error, got {other:?}"),
    }
    let wrong_type = tiny_gguf(vec![
        ("tokenizer.chat_template", 5u32.into()),
        ("tokenizer.ggml.tokens", tokens(&["<s>"])),
    ]);
    assert!(matches!(
        ChatTemplate::from_gguf(&wrong_type),
        Err(ChatTemplateError::Metadata(_))
    ));
    let no_tokens = tiny_gguf(vec![("tokenizer.ggml.eos_token_id", 0u32.into())]);
    assert!(matches!(
        ChatTemplate::from_gguf(&no_tokens),
        Err(ChatTemplateError::Metadata(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Well-known templates of other families

const LLAMA_3_1: &str = r#"{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"#;

const DEEPSEEK_R1_DISTILL: &str = r#"{% if not add_generation_prompt is defined -%}
  {%- set add_generation_prompt = false -%}
{%- endif -%}
{%- set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') -%}
{%- for message in messages -%}
  {%- if message['role'] == 'system' -%}
    {%- set ns.system_prompt = message['content'] -%}
  {%- endif -%}
{%- endfor -%}{{bos_token}}{{ns.system_prompt}}
{%- for message in messages -%}
  {%- if message['role'] == 'user' -%}
    {%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}
  {%- endif -%}
  {%- if message['role'] == 'assistant' and message['tool_calls'] -%}
    {%- set ns.is_tool = false -%}
    {%- for tool in message['tool_calls']-%}
      {%- if not ns.is_first -%}
        {{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}
        {%- set ns.is_first = true -%}
      {%- else -%}
        {{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}
      {%- endif -%}
    {%- endfor -%}
    {{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}
  {%- endif -%}
  {%- if message['role'] == 'assistant' and message['content'] is not none -%}
    {%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}
      {%- set ns.is_tool = false -%}
    {%- else -%}
      {%- set content = message['content'] -%}
      {%- if '</think>' in content -%}
        {%- set content = content.split('</think>')[-1] -%}
      {%- endif -%}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}
    {%- endif -%}
  {%- endif -%}
  {%- if message['role'] == 'tool' -%}
    {%- set ns.is_tool = true -%}
    {%- if ns.is_output_first -%}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
      {%- set ns.is_output_first = false -%}
      {%- else -%}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
    {%- endif -%}
  {%- endif -%}
{%- endfor -%}
{%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>'}}
{%- endif -%}
{%- if add_generation_prompt and not ns.is_tool -%}{{'<｜Assistant｜><think>\n'}}
{%- endif %}"#;

const EXAONE_3_5: &str = r#"{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\n' }}{% endif %}{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] == 'user' %}{{ '\n' }}{% else %}{{ '[|endofturn|]\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}"#;

const EXAONE_DEEP: &str = r#"{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\n' }}{% endif %}{% set content = message['content'] %}{% if '</thought>' in content %}{% set content = content.split('</thought>')[-1].lstrip('\n') %}{% endif %}{{ '[|' + message['role'] + '|]' + content }}{% if not message['role'] == 'user' %}{{ '[|endofturn|]' }}{% endif %}{% if not loop.last %}{{ '\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '\n[|assistant|]<thought>\n' }}{% endif %}"#;

const QWEN3: &str = r##"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"##;

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "도시의 날씨",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"]
        }
    }})
}

#[test]
fn llama3_1_template_puts_trimmed_system_prompt_after_date_header() {
    let messages = json!([
        {"role": "system", "content": "You are a pirate.  \n"},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Arr, hello!"},
        {"role": "user", "content": " Where is the treasure? "}
    ]);
    let expected = concat!(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n",
        "You are a pirate.<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\nArr, hello!<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    assert_eq!(
        render(
            LLAMA_3_1,
            "<|begin_of_text|>",
            "<|eot_id|>",
            &messages,
            None
        ),
        expected
    );
}

#[test]
fn llama3_1_template_takes_date_string_from_extra_arguments() {
    let out = render(
        LLAMA_3_1,
        "<|begin_of_text|>",
        "<|eot_id|>",
        &hello(),
        Some(json!({"date_string": "29 Nov 2026"})),
    );
    let expected = concat!(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "Cutting Knowledge Date: December 2023\nToday Date: 29 Nov 2026\n\n<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn llama3_1_template_puts_tools_in_first_user_message_as_indented_python_json() {
    let messages = json!([{"role": "user", "content": "Weather in Seoul?"}]);
    let out = render(
        LLAMA_3_1,
        "<|begin_of_text|>",
        "<|eot_id|>",
        &messages,
        Some(json!({"tools": [weather_tool()]})),
    );
    let expected = concat!(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "Environment: ipython\n",
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n",
        "Given the following functions, please respond with a JSON for a function call ",
        "with its proper arguments that best answers the given prompt.\n\n",
        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument ",
        "name and its value}.Do not use variables.\n\n",
        "{\n",
        "    \"type\": \"function\",\n",
        "    \"function\": {\n",
        "        \"name\": \"get_weather\",\n",
        "        \"description\": \"도시의 날씨\",\n",
        "        \"parameters\": {\n",
        "            \"type\": \"object\",\n",
        "            \"properties\": {\n",
        "                \"city\": {\n",
        "                    \"type\": \"string\"\n",
        "                },\n",
        "                \"days\": {\n",
        "                    \"type\": \"integer\"\n",
        "                }\n",
        "            },\n",
        "            \"required\": [\n",
        "                \"city\"\n",
        "            ]\n",
        "        }\n",
        "    }\n",
        "}\n\n",
        "Weather in Seoul?<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn deepseek_r1_template_drops_past_reasoning_and_opens_a_think_block() {
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
        {"role": "user", "content": "3+3?"}
    ]);
    let expected = concat!(
        "<｜begin▁of▁sentence｜>Be brief.",
        "<｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜>",
        "<｜User｜>3+3?<｜Assistant｜><think>\n",
    );
    let out = render(
        DEEPSEEK_R1_DISTILL,
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        &messages,
        None,
    );
    assert_eq!(out, expected);
}

#[test]
fn deepseek_r1_template_renders_tool_calls_and_outputs() {
    let messages = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Seoul\"}"}}
        ]},
        {"role": "tool", "content": "20C"},
        {"role": "assistant", "content": "It is 20C."}
    ]);
    let expected = concat!(
        "<｜begin▁of▁sentence｜><｜User｜>Weather?",
        "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n",
        "```json\n{\"city\": \"Seoul\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>",
        "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>20C<｜tool▁output▁end｜>",
        "<｜tool▁outputs▁end｜>It is 20C.<｜end▁of▁sentence｜>",
        "<｜Assistant｜><think>\n",
    );
    let out = render(
        DEEPSEEK_R1_DISTILL,
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        &messages,
        None,
    );
    assert_eq!(out, expected);
}

#[test]
fn exaone3_5_template_adds_empty_system_turn_and_ends_assistant_turns() {
    let messages = json!([
        {"role": "user", "content": "안녕"},
        {"role": "assistant", "content": "안녕하세요!"},
        {"role": "user", "content": "이름이 뭐야?"}
    ]);
    let expected = concat!(
        "[|system|][|endofturn|]\n",
        "[|user|]안녕\n",
        "[|assistant|]안녕하세요![|endofturn|]\n",
        "[|user|]이름이 뭐야?\n",
        "[|assistant|]",
    );
    assert_eq!(
        render(EXAONE_3_5, "[BOS]", "[|endofturn|]", &messages, None),
        expected
    );
}

#[test]
fn exaone_deep_template_strips_past_thoughts_and_opens_a_thought_block() {
    let messages = json!([
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<thought>\n1+1=2\n</thought>\n\n2"},
        {"role": "user", "content": "2+2?"}
    ]);
    let expected = concat!(
        "[|system|][|endofturn|]\n",
        "[|user|]1+1?\n",
        "[|assistant|]2[|endofturn|]\n",
        "[|user|]2+2?\n",
        "[|assistant|]<thought>\n",
    );
    assert_eq!(
        render(EXAONE_DEEP, "[BOS]", "[|endofturn|]", &messages, None),
        expected
    );
}

#[test]
fn qwen3_template_strips_history_reasoning_and_honours_enable_thinking() {
    let messages = json!([
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\n4"},
        {"role": "user", "content": "And 3+3?"}
    ]);
    let history = concat!(
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
        "<|im_start|>assistant\n4<|im_end|>\n",
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n",
        "<|im_start|>assistant\n",
    );
    let thinking = render(QWEN3, "", "<|im_end|>", &messages, None);
    assert_eq!(thinking, history);
    let no_thinking = render(
        QWEN3,
        "",
        "<|im_end|>",
        &messages,
        Some(json!({"enable_thinking": false})),
    );
    assert_eq!(no_thinking, format!("{history}<think>\n\n</think>\n\n"));
}

#[test]
fn qwen3_template_keeps_reasoning_of_the_turn_after_the_last_query() {
    let messages = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "reasoning_content": "\nNeed the tool.\n", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Seoul"}}}
        ]},
        {"role": "tool", "content": "20C"}
    ]);
    let expected = concat!(
        "<|im_start|>user\nWeather?<|im_end|>\n",
        "<|im_start|>assistant\n<think>\nNeed the tool.\n</think>\n\n",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Seoul\"}}\n</tool_call>",
        "<|im_end|>\n",
        "<|im_start|>user\n<tool_response>\n20C\n</tool_response><|im_end|>\n",
        "<|im_start|>assistant\n",
    );
    assert_eq!(render(QWEN3, "", "<|im_end|>", &messages, None), expected);
}

// ---------------------------------------------------------------------------------------
// Built-in fallbacks

#[test]
fn chatml_builtin_renders_two_turns_with_generation_prompt() {
    let source = builtin("chatml").expect("chatml builtin");
    let expected = concat!(
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
        "<|im_start|>assistant\n4<|im_end|>\n",
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n",
        "<|im_start|>assistant\n",
    );
    assert_eq!(render(source, "<s>", "</s>", &two_turns(), None), expected);
    let template = ChatTemplate::new(source, "<s>", "</s>").expect("compiles");
    let without = template.render(&two_turns(), false, None).expect("renders");
    assert_eq!(
        without,
        expected
            .strip_suffix("<|im_start|>assistant\n")
            .expect("suffix")
    );
}

#[test]
fn gemma_builtin_without_system_message_starts_with_bos_and_user_turn() {
    let source = builtin("gemma").expect("gemma builtin");
    let expected = concat!(
        "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n",
        "<start_of_turn>model\n4<end_of_turn>\n",
        "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n",
        "<start_of_turn>model\n",
    );
    assert_eq!(
        render(source, "<bos>", "<eos>", &two_turns(), None),
        expected
    );
}

#[test]
fn gemma_builtin_rejects_non_alternating_roles() {
    let source = builtin("gemma").expect("gemma builtin");
    let template = ChatTemplate::new(source, "<bos>", "<eos>").expect("compiles");
    let messages = json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]);
    match template.render(&messages, true, None) {
        Err(ChatTemplateError::Raised(msg)) => assert!(msg.contains("alternate"), "{msg}"),
        other => panic!("expected a raised exception, got {other:?}"),
    }
}

#[test]
fn fallback_for_arch_picks_gemma_for_gemma_family_and_chatml_otherwise() {
    for arch in ["gemma", "gemma2", "gemma3", "gemma3n"] {
        assert_eq!(Some(fallback_for_arch(arch)), builtin("gemma"), "{arch}");
    }
    for arch in ["llama", "qwen2", "qwen3", "deepseek2", "exaone4", ""] {
        assert_eq!(Some(fallback_for_arch(arch)), builtin("chatml"), "{arch}");
    }
    assert_eq!(builtin("no-such-template"), None);
}

// ---------------------------------------------------------------------------------------
// Messages

#[test]
fn text_part_arrays_are_flattened_into_one_string() {
    let source = "{% for m in messages %}[{{ m.content }}]{% endfor %}";
    let messages = json!([
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": null},
        {"role": "user", "content": []}
    ]);
    assert_eq!(
        render(source, "", "", &messages, None),
        "[first\nsecond][][]"
    );
}

#[test]
fn null_content_is_none_only_for_templates_that_test_for_none() {
    let messages = json!([{"role": "assistant", "content": null}]);
    let tests_none = "{% for m in messages %}{{ m.content is none }}{% endfor %}";
    assert_eq!(render(tests_none, "", "", &messages, None), "True");
    let concatenates = "{% for m in messages %}[{{ 'x' + m.content }}]{% endfor %}";
    assert_eq!(render(concatenates, "", "", &messages, None), "[x]");
}

#[test]
fn string_arguments_become_objects_only_for_templates_that_print_them_as_json() {
    let messages = json!([{"role": "assistant", "content": null, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
    ]}]);
    let as_json = "{% for c in messages[0].tool_calls %}{{ c.function.arguments | tojson }}{% endfor %}";
    assert_eq!(render(as_json, "", "", &messages, None), "{\"a\": 1}");
    let as_text = "{% for c in messages[0].tool_calls %}{{ 'args=' + c.function.arguments }}{% endfor %}";
    assert_eq!(render(as_text, "", "", &messages, None), "args={\"a\":1}");
}

#[test]
fn extra_message_fields_reach_the_template_unchanged() {
    let source = "{% for m in messages %}{{ m.name }}:{{ m.tool_call_id }};{% endfor %}";
    let messages = json!([{"role": "tool", "content": "x", "name": "f", "tool_call_id": "call_1"}]);
    assert_eq!(render(source, "", "", &messages, None), "f:call_1;");
}

#[test]
fn malformed_messages_are_rejected_with_clear_errors() {
    let template = ChatTemplate::new("{{ messages }}", "", "").expect("compiles");
    let cases = [
        (json!({"role": "user"}), "array"),
        (json!(["hello"]), "message 0 must be an object"),
        (json!([{"content": "x"}]), "no `role`"),
        (
            json!([{"role": 1, "content": "x"}]),
            "`role` must be a string",
        ),
        (json!([{"role": "user", "content": 5}]), "`content` must be"),
        (
            json!([{"role": "user", "content": {"text": "x"}}]),
            "`content` must be",
        ),
        (
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
            "image_url",
        ),
        (
            json!([{"role": "user", "content": [{"type": "text"}]}]),
            "no string `text`",
        ),
        (
            json!([{"role": "user", "content": ["plain"]}]),
            "must be an object",
        ),
    ];
    for (messages, needle) in cases {
        match template.render(&messages, true, None) {
            Err(ChatTemplateError::InvalidMessages(msg)) => {
                assert!(
                    msg.contains(needle),
                    "{messages}: message {msg:?} lacks {needle:?}"
                )
            }
            other => panic!("{messages}: expected InvalidMessages, got {other:?}"),
        }
    }
}

#[test]
fn extra_arguments_cannot_replace_built_in_variables() {
    let template = ChatTemplate::new("{{ bos_token }}", "<s>", "</s>").expect("compiles");
    for key in [
        "messages",
        "add_generation_prompt",
        "bos_token",
        "eos_token",
    ] {
        let mut extra = Map::new();
        extra.insert(key.into(), json!("x"));
        let err = template
            .render(&hello(), true, Some(&extra))
            .expect_err(key);
        assert!(
            matches!(err, ChatTemplateError::InvalidMessages(_)),
            "{key}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Jinja2 / transformers compatibility

#[test]
fn tools_and_documents_default_to_none_like_transformers() {
    let source =
        "{{ tools is none }}|{{ documents is none }}|{{ tools is defined }}|{{ eos_token }}";
    assert_eq!(
        render(source, "<s>", "</s>", &hello(), None),
        "True|True|True|</s>"
    );
}

#[test]
fn tojson_matches_python_json_dumps_with_transformers_defaults() {
    let source = "{{ extra_value | tojson }}";
    let value = json!({"z": 1, "a": [1.5, 1e-5, 1e16, 100.0, -0.25, true, null], "k": "한글 \"q\" \\ \n\u{1}</>&'"});
    let out = render(
        source,
        "",
        "",
        &hello(),
        Some(json!({"extra_value": value})),
    );
    let expected = concat!(
        r#"{"z": 1, "a": [1.5, 1e-05, 1e+16, 100.0, -0.25, true, null], "#,
        r#""k": "한글 \"q\" \\ \n\u0001</>&'"}"#
    );
    assert_eq!(out, expected);
}

#[test]
fn tojson_honours_indent_separators_sort_keys_and_ensure_ascii() {
    let extra = Some(json!({"v": {"b": [1, {}], "a": "é😀", "c": []}}));
    let cases = [
        (
            "{{ v | tojson(indent=2) }}",
            "{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": \"é😀\",\n  \"c\": []\n}",
        ),
        (
            "{{ v | tojson(separators=(',', ':')) }}",
            r#"{"b":[1,{}],"a":"é😀","c":[]}"#,
        ),
        (
            "{{ v | tojson(sort_keys=true) }}",
            r#"{"a": "é😀", "b": [1, {}], "c": []}"#,
        ),
        (
            "{{ v | tojson(ensure_ascii=true) }}",
            r#"{"b": [1, {}], "a": "\u00e9\ud83d\ude00", "c": []}"#,
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(
            render(source, "", "", &hello(), extra.clone()),
            expected,
            "{source}"
        );
    }
}

#[test]
fn values_print_as_python_str_would() {
    let source = "{{ none }}|{{ true }}|{{ false }}|{{ [1, 'a', none] }}|{{ {'k': \"it's\"} }}|{{ 2.5 }}|{{ 1.0 }}|{{ missing }}|{{ [true] | string }}";
    assert_eq!(
        render(source, "", "", &hello(), None),
        "None|True|False|[1, 'a', None]|{'k': \"it's\"}|2.5|1.0||[True]"
    );
}

#[test]
fn python_string_and_dict_methods_work() {
    let source = concat!(
        "{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'a,b,c'.split(',') | join('+') }}|",
        "{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith('lo') }}|{{ 'a-b'.replace('-', '_') }}|",
        "{{ 'ab'.upper() }}{{ 'CD'.lower() }}|{{ 'hello world'.title() }}|",
        "{{ 'a b c'.rsplit(none, 1) | join('+') }}|{{ 'k=v=w'.rsplit('=', 1) | join('+') }}|",
        "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{{ d.get('b') }}|{{ d.get('zz', 'dflt') }}|",
        "{{ d.keys() | join(',') }}|{{ d.values() | join(',') }}|{{ [3, 4, 5].index(4) }}"
    );
    let out = render(
        source,
        "",
        "",
        &hello(),
        Some(json!({"d": {"b": 2, "a": 1}})),
    );
    assert_eq!(
        out,
        "a b|axx|a+b+c|True|True|a_b|ABcd|Hello World|a b+c|k=v+w|b=2;a=1;|2|dflt|b,a|2,1|1"
    );
}

#[test]
fn more_python_string_methods_work() {
    let source = concat!(
        "{{ 'x'.center(4) }}|{{ 'ab'.center(5, '*') }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|",
        "{{ 'a,b,c'.partition(',') | join('/') }}|{{ 'a,b,c'.rpartition(',') | join('/') }}|",
        "{{ 'abc'.partition('x') | join('/') }}|{{ 'abc'.rpartition('x') | join('/') }}|",
        "{{ 'prefix-body'.removeprefix('prefix-') }}|{{ 'body.txt'.removesuffix('.txt') }}|",
        "{{ 'x'.removeprefix('y') }}"
    );
    assert_eq!(
        render(source, "", "", &hello(), None),
        " x  |**ab*|ab..|  ab|a/,/b,c|a,b/,/c|abc//|//abc|body|body|x"
    );
}

#[test]
fn length_of_undefined_is_zero_and_counts_characters() {
    let source = "{{ nothing | length }}|{{ messages | length }}|{{ '한글' | length }}|{{ {'a': 1} | count }}";
    assert_eq!(render(source, "", "", &hello(), None), "0|1|2|1");
}

#[test]
fn non_finite_floats_print_like_python() {
    let source = "{{ 1e400 }}|{{ -1e400 }}|{{ [1e400, -1e400] | tojson }}";
    assert_eq!(
        render(source, "", "", &hello(), None),
        "inf|-inf|[Infinity, -Infinity]"
    );
}

#[test]
fn generation_tags_render_their_body_with_unchanged_whitespace() {
    let messages = json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]);
    let inline = "{% for m in messages %}{%- generation -%}  {{ m.content }}  {%- endgeneration -%}\n{% endfor %}";
    assert_eq!(render(inline, "", "", &messages, None), "ab");
    let block = "{% for m in messages %}\n  {% generation %}\n{{ m.content }}\n  {% endgeneration %}\n{% endfor %}";
    assert_eq!(render(block, "", "", &messages, None), "a\nb\n");
}

#[test]
fn whitespace_control_matches_trim_and_lstrip_blocks() {
    let source = "<start>\n  {% if true %}\n    x\n  {% endif %}\n<end>\n";
    // trim_blocks drops the newline after each tag, lstrip_blocks the indentation before
    // it, and the final newline of the source is dropped (keep_trailing_newline=False).
    assert_eq!(
        render(source, "", "", &hello(), None),
        "<start>\n    x\n<end>"
    );
}

#[test]
fn loop_controls_break_and_continue_work() {
    let source = "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}";
    assert_eq!(render(source, "", "", &hello(), None), "023");
}

#[test]
fn list_append_is_refused_as_in_the_immutable_sandbox() {
    let template =
        ChatTemplate::new("{% set xs = [] %}{{ xs.append(1) }}", "", "").expect("compiles");
    match template.render(&hello(), true, None) {
        Err(ChatTemplateError::Render(msg)) => assert!(msg.contains("append"), "{msg}"),
        other => panic!("expected a render error, got {other:?}"),
    }
}

#[test]
fn strftime_formats_fixed_times_in_utc() {
    // 2024-07-26 13:25:09 UTC, a Friday, day 208 of a leap year.
    let t = 1_722_000_309;
    assert_eq!(strftime_utc(t, "%d %b %Y"), "26 Jul 2024");
    assert_eq!(
        strftime_utc(t, "%A %B %-d, %y %H:%M:%S %p %I %j %F %%"),
        "Friday July 26, 24 13:25:09 PM 01 208 2024-07-26 %"
    );
    assert_eq!(strftime_utc(0, "%a %d %m %Y %T"), "Thu 01 01 1970 00:00:00");
    // 2000-02-29 (leap day of a century leap year) and a date before the epoch.
    assert_eq!(strftime_utc(951_782_400, "%Y-%m-%d %a"), "2000-02-29 Tue");
    assert_eq!(strftime_utc(-86_400, "%Y-%m-%d"), "1969-12-31");
}

#[test]
fn strftime_now_renders_the_current_utc_date() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let out = render("{{ strftime_now('%Y-%m-%d') }}", "", "", &hello(), None);
    // The render may straddle midnight: accept the date just before or after.
    let before = strftime_utc(now, "%Y-%m-%d");
    let after = strftime_utc(now + 5, "%Y-%m-%d");
    assert!(out == before || out == after, "{out} vs {before}/{after}");
}

// ---------------------------------------------------------------------------------------
// Errors and the sandbox

#[test]
fn raise_exception_surfaces_the_template_message() {
    let source = "{% if messages[0].role != 'system' %}{{ raise_exception('System message required, got ' + messages[0].role) }}{% endif %}";
    let template = ChatTemplate::new(source, "", "").expect("compiles");
    match template.render(&hello(), true, None) {
        Err(ChatTemplateError::Raised(msg)) => assert_eq!(msg, "System message required, got user"),
        other => panic!("expected a raised exception, got {other:?}"),
    }
}

#[test]
fn syntax_errors_are_reported_at_compile_time_with_the_line() {
    for source in [
        "{% for m in messages %}\n{{ m.content }",
        "ok\n{% if %}",
        "{% endfor %}",
        "{{ a | }}",
    ] {
        match ChatTemplate::new(source, "", "") {
            Err(ChatTemplateError::Syntax(msg)) => {
                assert!(msg.contains("line"), "{source:?}: {msg}")
            }
            other => panic!("{source:?}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn undefined_operations_are_render_errors_not_panics() {
    let template =
        ChatTemplate::new("{{ messages[0].content.nope.deeper }}", "", "").expect("compiles");
    assert!(matches!(
        template.render(&hello(), true, None),
        Err(ChatTemplateError::Render(_))
    ));
}

const FAST: Duration = Duration::from_secs(1);

#[test]
fn huge_range_fails_fast() {
    let err = render_err_within(
        "{% for i in range(100000000) %}x{% endfor %}",
        &hello(),
        FAST,
    );
    assert!(
        matches!(
            err,
            ChatTemplateError::Render(_) | ChatTemplateError::LimitExceeded(_)
        ),
        "{err:?}"
    );
}

#[test]
fn nested_loops_run_out_of_fuel_fast() {
    let source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = render_err_within(source, &hello(), FAST);
    assert!(
        matches!(err, ChatTemplateError::LimitExceeded(ref m) if m.contains("fuel")),
        "{err:?}"
    );
}

#[test]
fn recursive_macro_hits_the_recursion_limit_fast() {
    let source = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    let err = render_err_within(source, &hello(), FAST);
    assert!(
        matches!(err, ChatTemplateError::LimitExceeded(_)),
        "{err:?}"
    );
}

#[test]
fn string_multiplication_blow_up_fails_fast() {
    let err = render_err_within("{{ 'a' * 10**9 }}", &hello(), FAST);
    assert!(
        matches!(err, ChatTemplateError::Render(ref m) if m.contains("too large")),
        "{err:?}"
    );
}

#[test]
fn output_larger_than_the_cap_fails_fast() {
    let source = "{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}";
    let err = render_err_within(source, &hello(), FAST);
    assert!(
        matches!(err, ChatTemplateError::LimitExceeded(ref m) if m.contains("larger")),
        "{err:?}"
    );
}

#[test]
fn many_messages_render_within_the_fuel_budget() {
    let messages: Vec<Value> = (0..2001)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i}")}))
        .collect();
    let messages = Value::Array(messages);
    let source = {
        let mut s = String::from(QWEN3);
        s.push_str("{# long conversation #}");
        s
    };
    let out = render(&source, "", "<|im_end|>", &messages, None);
    assert!(
        out.ends_with("<|im_start|>user\nturn 2000<|im_end|>\n<|im_start|>assistant\n"),
        "{}",
        &out[out.len() - 80..]
    );
}

#[test]
fn chat_template_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
    let template = std::sync::Arc::new(
        ChatTemplate::new(builtin("chatml").expect("chatml"), "", "").expect("compiles"),
    );
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let template = template.clone();
            std::thread::spawn(move || template.render(&hello(), true, None).expect("renders"))
        })
        .collect();
    for handle in handles {
        assert_eq!(
            handle.join().expect("thread"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
