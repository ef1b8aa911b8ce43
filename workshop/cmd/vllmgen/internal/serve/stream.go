package serve // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/serve"

import (
	"net/http"
	"strconv"
	"time"
)

// tokenText is the text of every emulated token (a leading space, as tokenizers produce for words).
const tokenText = " tok"

// stream writes one response in vLLM's OpenAI format: server-sent events for stream=true (one chunk per
// token, the usage chunk when stream_options.include_usage is set, then [DONE]), one JSON body otherwise.
type stream struct {
	w            http.ResponseWriter
	flusher      http.Flusher
	chat         bool
	streaming    bool
	includeUsage bool
	finishReason string
	head         []byte // the fields every chunk starts with
	buf          []byte
	text         []byte
}

func (s *stream) init(w http.ResponseWriter, chat bool, id, model string, streaming, includeUsage bool) {
	s.w, s.chat, s.streaming, s.includeUsage = w, chat, streaming, includeUsage
	s.flusher, _ = w.(http.Flusher)
	object := "text_completion"
	if chat {
		object = "chat.completion"
		if streaming {
			object = "chat.completion.chunk"
		}
	}
	s.head = append(s.head, `{"id":`...)
	s.head = strconv.AppendQuote(s.head, id)
	s.head = append(s.head, `,"object":"`...)
	s.head = append(s.head, object...)
	s.head = append(s.head, `","created":`...)
	s.head = strconv.AppendInt(s.head, time.Now().Unix(), 10)
	s.head = append(s.head, `,"model":`...)
	s.head = strconv.AppendQuote(s.head, model)
	s.finishReason = "length"
}

func (s *stream) writeEvent() error {
	if !s.streaming {
		return nil
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	if s.flusher != nil {
		s.flusher.Flush()
	}
	return nil
}

func (s *stream) startEvents() {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	s.w.WriteHeader(http.StatusOK)
}

// token sends one output token; the first call of a streaming chat response sends the assistant role first,
// as vLLM does with the first output.
func (s *stream) token(first, last bool) error {
	if !s.streaming {
		s.text = append(s.text, tokenText...)
		return nil
	}
	if first {
		s.startEvents()
		if s.chat {
			s.buf = append(append(append(s.buf[:0], "data: "...), s.head...),
				`,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
			if err := s.writeEvent(); err != nil {
				return err
			}
		}
	}
	s.buf = append(append(s.buf[:0], "data: "...), s.head...)
	if s.chat {
		s.buf = append(s.buf, `,"choices":[{"index":0,"delta":{"content":"`+tokenText+`"},"logprobs":null,"finish_reason":`...)
	} else {
		s.buf = append(s.buf, `,"choices":[{"index":0,"text":"`+tokenText+`","logprobs":null,"finish_reason":`...)
	}
	if last {
		s.buf = append(append(append(s.buf, '"'), s.finishReason...), '"')
	} else {
		s.buf = append(s.buf, "null"...)
	}
	s.buf = append(s.buf, `,"stop_reason":null}]}`+"\n\n"...)
	return s.writeEvent()
}

func (s *stream) appendUsage(prompt, completion int64) {
	s.buf = append(s.buf, `"usage":{"prompt_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, prompt, 10)
	s.buf = append(s.buf, `,"total_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, prompt+completion, 10)
	s.buf = append(s.buf, `,"completion_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, completion, 10)
	s.buf = append(s.buf, '}')
}

// end sends the usage chunk (when asked for) and [DONE], or the whole non-streaming response.
func (s *stream) end(prompt, completion int64) error {
	if !s.streaming {
		s.buf = append(s.buf[:0], s.head...)
		if s.chat {
			s.buf = append(s.buf, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
			s.buf = strconv.AppendQuote(s.buf, string(s.text))
			s.buf = append(s.buf, `},"logprobs":null,"finish_reason":"`...)
		} else {
			s.buf = append(s.buf, `,"choices":[{"index":0,"text":`...)
			s.buf = strconv.AppendQuote(s.buf, string(s.text))
			s.buf = append(s.buf, `,"logprobs":null,"finish_reason":"`...)
		}
		s.buf = append(append(s.buf, s.finishReason...), `","stop_reason":null}],`...)
		s.appendUsage(prompt, completion)
		s.buf = append(s.buf, "}\n"...)
		s.w.Header().Set("Content-Type", "application/json")
		_, err := s.w.Write(s.buf)
		return err
	}
	if s.includeUsage {
		s.buf = append(append(append(s.buf[:0], "data: "...), s.head...), `,"choices":[],`...)
		s.appendUsage(prompt, completion)
		s.buf = append(s.buf, "}\n\n"...)
		if err := s.writeEvent(); err != nil {
			return err
		}
	}
	s.buf = append(s.buf[:0], "data: [DONE]\n\n"...)
	return s.writeEvent()
}
