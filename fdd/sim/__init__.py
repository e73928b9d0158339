"""The offline simulator: a synthetic world of arithmetic word problems (``world``) and the
oracle teacher that drives it (``oracle``). Neither is a language model; they let the whole
method run with no network, key or GPU, and give tests exact ground truth."""
