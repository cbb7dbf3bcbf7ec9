package edge

import (
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// appendScore writes a probability with 4 decimals, like the CLI.
func appendScore(dst []byte, f float32) []byte {
	return strconv.AppendFloat(dst, float64(f), 'f', 4, 32)
}

// appendField appends ,"key":"value" (or without the comma when first).
func appendField(dst []byte, key, value string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return httperr.AppendJSONString(dst, value)
}

// eachField calls f for every field of obj and stops at the first error,
// which it returns.
func eachField(obj *fastjson.Object, f func(key []byte, val *fastjson.Value) error) error {
	var err error
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if err == nil {
			err = f(key, val)
		}
	})
	return err
}
