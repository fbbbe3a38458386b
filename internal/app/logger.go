package app

import (
	"io"
	"log/slog"
	"os"

	"github.com/lmittmann/tint"
)

// NewLogger returns the process logger: tint (colour on a terminal) for
// "text", JSON for "json", and when format is "" text on a terminal, else JSON.
func NewLogger(format string, w io.Writer, level slog.Level) *slog.Logger {
	tty := isTerminal(w)
	if format == "" {
		format = "json"
		if tty {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, NoColor: !tty, TimeFormat: "15:04:05.000"}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
