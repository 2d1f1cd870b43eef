"""The conformance fixture's prompts: ``PROMPTS`` (what prompts/list answers) and
:func:`get_prompt`, including the MRTR prompt that asks the client for input first.
"""

from __future__ import annotations

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import NotFound

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_builders import (  # type: ignore[import-not-found,unused-ignore]
        PNG,
        Json,
        accepted,
        elicit,
        input_required,
        input_responses,
        need,
        object_schema,
    )
except ImportError:
    from conformance.fixture_builders import (
        PNG,
        Json,
        accepted,
        elicit,
        input_required,
        input_responses,
        need,
        object_schema,
    )


def _argument(name: str, description: str) -> Json:
    return {"name": name, "description": description, "required": True}


PROMPTS: tuple[Json, ...] = (
    {
        "name": "test_simple_prompt",
        "title": "Simple Test Prompt",
        "description": "A simple prompt without arguments",
    },
    {
        "name": "test_prompt_with_arguments",
        "title": "Prompt With Arguments",
        "description": "A prompt with required arguments",
        "arguments": [
            _argument("arg1", "First test argument"),
            _argument("arg2", "Second test argument"),
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "title": "Prompt With Embedded Resource",
        "description": "A prompt that includes an embedded resource",
        "arguments": [_argument("resourceUri", "URI of the resource to embed")],
    },
    {
        "name": "test_prompt_with_image",
        "title": "Prompt With Image",
        "description": "A prompt that includes image content",
    },
    {
        "name": "test_input_required_result_prompt",
        "description": "MRTR: prompt that requires elicitation input",
    },
)


def user(content: Json) -> Json:
    return {"role": "user", "content": content}


def user_text(value: str) -> Json:
    return user({"type": "text", "text": value})


def get_prompt(name: str, args: Json, params: Json, ctx: CallContext) -> Json:
    if name == "test_simple_prompt":
        return {"messages": [user_text("This is a simple prompt for testing.")]}
    if name == "test_prompt_with_arguments":
        arg1, arg2 = args.get("arg1"), args.get("arg2")
        return {"messages": [user_text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]}
    if name == "test_prompt_with_embedded_resource":
        resource = {
            "uri": str(args.get("resourceUri", "test://example-resource")),
            "mimeType": "text/plain",
            "text": "Embedded resource content for testing.",
        }
        return {
            "messages": [
                user({"type": "resource", "resource": resource}),
                user_text("Please process the embedded resource above."),
            ]
        }
    if name == "test_prompt_with_image":
        return {
            "messages": [
                user({"type": "image", "data": PNG, "mimeType": "image/png"}),
                user_text("Please analyze the image above."),
            ]
        }
    if name == "test_input_required_result_prompt":
        need(ctx, "elicitation")
        content = accepted(input_responses(params).get("user_context"))
        if content is None:
            schema = object_schema({"context": {"type": "string"}}, ["context"])
            ask = elicit("What context should the prompt use?", schema)
            return input_required({"user_context": ask})
        return {"messages": [user_text(f"Prompt with context: {content.get('context')}")]}
    raise NotFound(f"Unknown prompt: {name}")
