package edge

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// appendScore writes a probability with 4 decimals, like the CLI and
// strconv.AppendFloat(dst, f, 'f', 4, 32), in a fraction of its time: a
// probability is 0.dddd or 1.0000, written from an integer. f·10⁴ is
// exact in a float64 (24 bits times 14), and rounding it half to even
// gives AppendFloat's digits (TestAppendScore).
func appendScore(dst []byte, f float32) []byte {
	if !(f >= 0 && f <= 1) {
		return strconv.AppendFloat(dst, float64(f), 'f', 4, 32)
	}
	n := int(math.RoundToEven(float64(f) * 10000))
	return append(dst, byte('0'+n/10000), '.', byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
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
