// The Vercel AI SDK's OpenAI Responses provider (`openai.responses(model)`), unchanged,
// against a live stack: generateText, then streamText. Prints one JSON line with what each
// returned; any error (an HTTP error, an `error` part in the stream) exits non-zero.
// Env: AISOPOD_BASE_URL (…/v1), AISOPOD_TOKEN, AISOPOD_MODEL. Args: two prompts.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const { AISOPOD_BASE_URL, AISOPOD_TOKEN, AISOPOD_MODEL } = process.env;
const [firstPrompt, secondPrompt] = process.argv.slice(2);
const provider = createOpenAI({ baseURL: AISOPOD_BASE_URL, apiKey: AISOPOD_TOKEN });
const model = provider.responses(AISOPOD_MODEL);

const generated = await generateText({ model, prompt: firstPrompt, maxRetries: 0 });

const streamed = streamText({ model, prompt: secondPrompt, maxRetries: 0 });
const deltas = [];
let finishReason = null;
for await (const part of streamed.fullStream) {
  if (part.type === "error") {
    throw part.error instanceof Error ? part.error : new Error(JSON.stringify(part.error));
  }
  if (part.type === "text-delta") deltas.push(part.text);
  if (part.type === "finish") finishReason = part.finishReason;
}

console.log(
  JSON.stringify({
    generated: {
      text: generated.text,
      finishReason: generated.finishReason,
      outputTokens: generated.usage.outputTokens,
      responseId: generated.response.id,
    },
    streamed: { text: deltas.join(""), deltas: deltas.length, finishReason },
  }),
);
