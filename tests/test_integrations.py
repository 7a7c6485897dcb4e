"""LangChain (langchain-cerebras), LiteLLM (its Cerebras provider) and the OpenAI Agents SDK, unchanged,
against a live wafer serving qwen2.5-coder-0.5b (its chat template supports tools). Everything is
greedy (temperature 0) and tool calls are forced where a test needs one, so the answers are fixed.
docs/integrations.md shows the same code."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import BaseModel

from conftest import QWEN_ID

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM: no model-price download at import

QUESTION = "What is the capital of France? Answer with one word."
WEATHER = "Paris: 17.5 degrees Celsius, sunny, wind 9 km/h."


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return WEATHER if "paris" in city.lower() else f"{city}: no data."


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class City(BaseModel):
    name: str
    country: str
    population: int


def uses_the_tool_result(text: str) -> bool:
    """The final answer carries the tool's result (17.5 degrees, a figure the model cannot guess) rather than
    a made-up forecast. (Qwen2.5-Coder-0.5B tends to restate the call and the result as JSON, not a sentence.)"""
    return "17.5" in text


# --------------------------------------------------------------------------- LangChain


@pytest.fixture(scope="module")
def chat_cerebras(qwen_server):
    from langchain_cerebras import ChatCerebras

    return ChatCerebras(model=QWEN_ID, base_url=qwen_server.url + "/v1", api_key="test-key",
                        temperature=0, max_tokens=80, max_retries=0)


def test_langchain_invoke_and_stream(chat_cerebras):
    msg = chat_cerebras.invoke(QUESTION)
    assert "Paris" in msg.content
    assert msg.usage_metadata["input_tokens"] > 10 and msg.usage_metadata["output_tokens"] >= 1
    assert msg.response_metadata["model_name"] == QWEN_ID
    assert msg.response_metadata["finish_reason"] == "stop"
    chunks = list(chat_cerebras.stream(QUESTION))
    assert len([c for c in chunks if c.content]) >= 1
    assert "".join(c.content for c in chunks) == msg.content


def test_langchain_bind_tools_round_trip(chat_cerebras):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    weather = tool(get_weather)
    forced = chat_cerebras.bind_tools([weather], tool_choice="get_weather")
    history = [HumanMessage("What is the weather in Paris right now?")]
    ai = forced.invoke(history)
    assert len(ai.tool_calls) == 1
    call = ai.tool_calls[0]
    assert call["name"] == "get_weather" and "paris" in call["args"]["city"].lower() and call["id"]
    history += [ai, ToolMessage(weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = chat_cerebras.bind_tools([weather]).invoke(history)
    assert not final.tool_calls and uses_the_tool_result(final.content), final.content


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_langchain_with_structured_output(chat_cerebras, method):
    structured = chat_cerebras.with_structured_output(City, method=method)
    prompt = "Paris is the capital of France and has about 2100000 inhabitants. Give the city as JSON " \
             "with the keys name, country and population."
    city = structured.invoke(prompt)
    assert isinstance(city, City)
    assert city.name == "Paris" and city.country == "France" and city.population > 1_000_000


# --------------------------------------------------------------------------- LiteLLM


@pytest.fixture(scope="module")
def litellm_kw(qwen_server):
    import litellm

    litellm.telemetry = False
    return dict(model=f"cerebras/{QWEN_ID}", api_base=qwen_server.url + "/v1", api_key="test-key",
                temperature=0, max_tokens=40, num_retries=0)


def test_litellm_completion_and_stream(litellm_kw):
    import litellm

    r = litellm.completion(messages=[{"role": "user", "content": QUESTION}], **litellm_kw)
    assert "Paris" in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens >= 1
    chunks = list(litellm.completion(messages=[{"role": "user", "content": QUESTION}], stream=True, **litellm_kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content


def test_litellm_tools_round_trip(litellm_kw):
    import litellm

    messages = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    r = litellm.completion(messages=messages, tools=[WEATHER_TOOL],
                           tool_choice={"type": "function", "function": {"name": "get_weather"}}, **litellm_kw)
    msg = r.choices[0].message
    assert len(msg.tool_calls) == 1 and msg.tool_calls[0].function.name == "get_weather"
    args = json.loads(msg.tool_calls[0].function.arguments)
    assert "paris" in args["city"].lower()
    messages += [msg.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": get_weather(**args)}]
    final = litellm.completion(messages=messages, tools=[WEATHER_TOOL], **litellm_kw)
    assert not final.choices[0].message.tool_calls
    assert uses_the_tool_result(final.choices[0].message.content), final.choices[0].message.content


def test_litellm_response_format(litellm_kw):
    import litellm

    prompt = [{"role": "user", "content": "Paris is the capital of France and has about 2100000 inhabitants. "
                                          "Give the city as JSON."}]
    kw = {**litellm_kw, "max_tokens": 80}
    schema = {"type": "json_schema", "json_schema": {"name": "city", "strict": True,
                                                     "schema": {**City.model_json_schema(), "additionalProperties": False}}}
    r = litellm.completion(messages=prompt, response_format=schema, **kw)
    city = City.model_validate_json(r.choices[0].message.content)
    assert city.name == "Paris" and city.country == "France"
    r = litellm.completion(messages=prompt, response_format=City, **kw)  # a pydantic class, converted by LiteLLM
    assert City.model_validate_json(r.choices[0].message.content).name == "Paris"
    r = litellm.completion(messages=prompt, response_format={"type": "json_object"}, **kw)
    assert isinstance(json.loads(r.choices[0].message.content), dict)


# --------------------------------------------------------------------------- OpenAI Agents SDK


def test_openai_agents_function_tool(qwen_server):
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    seen: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """Get the current weather in a city."""
        seen.append(city)
        return get_weather(city)

    client = AsyncOpenAI(base_url=qwen_server.url + "/v1", api_key="test-key", max_retries=0)
    agent = Agent(
        name="Assistant",
        instructions="You answer questions about the weather. Always use the weather tool, then answer in one "
                     "sentence with the temperature it reports.",
        model=OpenAIChatCompletionsModel(model=QWEN_ID, openai_client=client),
        model_settings=ModelSettings(temperature=0, tool_choice="required", max_tokens=60),
        tools=[weather],
    )
    result = Runner.run_sync(agent, "What is the weather in Paris right now?", max_turns=4)
    assert [c.lower() for c in seen] == ["paris"]
    assert uses_the_tool_result(result.final_output), result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"] and kinds[-1] == "message_output_item"


# --------------------------------------------------------------------------- the docs, as written


def test_docs_integrations_snippets_run(qwen_server, capsys):
    """Every Python block of docs/integrations.md runs as is (only the server URL differs) and prints what
    its comments say."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "integrations.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 3
    for code in blocks:
        exec(compile(code.replace("http://127.0.0.1:8080", qwen_server.url), "docs/integrations.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("Paris") >= 4  # LangChain and LiteLLM, invoke and stream each
    assert out.count("17.5") >= 3  # the answers after each tool round trip use the tool's result
    assert "name='Paris' country='France'" in out
