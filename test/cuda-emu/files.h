// Raw binary files between the emulation tests (TypeScript writes the inputs, reads the outputs) and their mains.
#pragma once
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

template <typename T>
std::vector<T> readFile(const std::string& path, size_t n) {
  std::vector<T> v(n);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  f.read((char*)v.data(), n * sizeof(T));
  return v;
}

template <typename T>
void writeFile(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write((const char*)v.data(), v.size() * sizeof(T));
}
