// scripts/compile_budget_calibration.cpp — the yardstick of scripts/compile_budget.sh: a translation unit of ordinary
// C++ (the standard library's containers, algorithms, regex and streams, and Eigen's dense products) that does not
// change as vkfuse does. The budget compares each example's compile time with this one's on the same machine, in the
// same minute, so that the test tracks what vkfuse costs the compiler rather than how fast the machine is today.
#include <Eigen/Core>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

template <class Scalar, int N>
Scalar solve_and_check(std::mt19937& rng) {
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    Eigen::Matrix<Scalar, N, N> a;
    Eigen::Matrix<Scalar, N, 1> b;
    for (int i = 0; i < N; ++i) {
        for (int j = 0; j < N; ++j) a(i, j) = static_cast<Scalar>(dist(rng)) + (i == j ? Scalar(N) : Scalar(0));
        b(i) = static_cast<Scalar>(dist(rng));
    }
    Eigen::Matrix<Scalar, N, 1> x = b;  // a few Jacobi sweeps: the matrix is diagonally dominant
    for (int sweep = 0; sweep < 20; ++sweep) x = (b - (a * x - a.diagonal().cwiseProduct(x))).cwiseQuotient(a.diagonal());
    return (a * x - b).norm() + (a.transpose() * a).trace();
}

std::map<std::string, int> count_words(const std::string& text) {
    std::map<std::string, int> counts;
    const std::regex word("[A-Za-z]+");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), word); it != std::sregex_iterator(); ++it)
        ++counts[it->str()];
    return counts;
}

} // namespace

int main() {
    std::mt19937 rng(7);
    double total = 0;
    total += solve_and_check<float, 8>(rng) + solve_and_check<double, 16>(rng);
    Eigen::MatrixXf m = Eigen::MatrixXf::Random(64, 64);
    Eigen::VectorXf v = Eigen::VectorXf::Random(64);
    total += (m * v).squaredNorm() + (m.transpose() * m).diagonal().sum();

    std::ostringstream text;
    for (int i = 0; i < 200; ++i) text << "word" << (i % 7 == 0 ? " other" : " again") << ' ';
    const auto counts = count_words(text.str());
    std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::unordered_map<int, std::string> by_count;
    for (const auto& [w, c] : sorted) by_count.emplace(c, w);
    std::vector<int> numbers(1000);
    std::iota(numbers.begin(), numbers.end(), 0);
    std::shuffle(numbers.begin(), numbers.end(), rng);
    std::stable_sort(numbers.begin(), numbers.end());
    std::printf("%.3f %zu %zu %d\n", total, counts.size(), by_count.size(), numbers[500]);
    return 0;
}
