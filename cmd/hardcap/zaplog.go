package main

import (
	"slices"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zerologCore is a zapcore.Core that writes each zap entry, with its
// fields, to a zerolog logger at the matching level: certmagic logs through
// zap, and the server's log must keep one format.
type zerologCore struct {
	log zerolog.Logger
	// fields are the ones With added, written before an entry's own.
	fields []zapcore.Field
}

var _ zapcore.Core = zerologCore{}

// newZapLogger is a zap logger that writes to l.
func newZapLogger(l zerolog.Logger) *zap.Logger { return zap.New(zerologCore{log: l}) }

// zerologLevel maps a zap level to zerolog's. DPanic, Panic and Fatal are
// errors here: a library's log line must not stop the server (zap itself
// panics or exits after writing them, as it would with any core).
func zerologLevel(l zapcore.Level) zerolog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return zerolog.DebugLevel
	case l == zapcore.InfoLevel:
		return zerolog.InfoLevel
	case l == zapcore.WarnLevel:
		return zerolog.WarnLevel
	}
	return zerolog.ErrorLevel
}

// Enabled reports whether the zerolog logger writes entries of level l.
func (c zerologCore) Enabled(l zapcore.Level) bool {
	zl := zerologLevel(l)
	return zl >= c.log.GetLevel() && zl >= zerolog.GlobalLevel()
}

// With returns a core that writes fields with every entry.
func (c zerologCore) With(fields []zapcore.Field) zapcore.Core {
	return zerologCore{log: c.log, fields: append(slices.Clip(c.fields), fields...)}
}

// Check adds the core to ce when the entry's level is written.
func (c zerologCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write writes one entry: its logger's name, the core's fields, the entry's
// fields in order, and a stack when zap took one.
func (c zerologCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	ev := c.log.WithLevel(zerologLevel(e.Level))
	if e.LoggerName != "" {
		ev = ev.Str("logger", e.LoggerName)
	}
	for _, list := range [][]zapcore.Field{c.fields, fields} {
		for _, f := range list {
			enc := zapcore.NewMapObjectEncoder()
			f.AddTo(enc)
			keys := make([]string, 0, len(enc.Fields))
			for k := range enc.Fields {
				keys = append(keys, k)
			}
			// One field gives one key, except an inline object's.
			slices.Sort(keys)
			for _, k := range keys {
				ev = addZapValue(ev, k, enc.Fields[k])
			}
		}
	}
	if e.Stack != "" {
		ev = ev.Str("stack", e.Stack)
	}
	ev.Msg(e.Message)
	return nil
}

// Sync has nothing to flush: zerolog writes each line as it is made.
func (c zerologCore) Sync() error { return nil }

// addZapValue adds a value as zap's map encoder left it, with zerolog's
// typed field where there is one.
func addZapValue(ev *zerolog.Event, k string, v any) *zerolog.Event {
	switch v := v.(type) {
	case string:
		return ev.Str(k, v)
	case bool:
		return ev.Bool(k, v)
	case int64:
		return ev.Int64(k, v)
	case int:
		return ev.Int(k, v)
	case int32:
		return ev.Int32(k, v)
	case uint64:
		return ev.Uint64(k, v)
	case uint32:
		return ev.Uint32(k, v)
	case float64:
		return ev.Float64(k, v)
	case float32:
		return ev.Float32(k, v)
	case time.Duration:
		return ev.Dur(k, v)
	case time.Time:
		return ev.Time(k, v)
	case error:
		return ev.AnErr(k, v)
	case nil:
		return ev.Interface(k, nil)
	}
	return ev.Interface(k, v)
}
