import FuzzSupport

runFuzzer { data, size in withFuzzInput(data, size, fuzz) }
