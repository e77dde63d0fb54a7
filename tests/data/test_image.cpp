// Tests of data/image: decoding rules, the reference's preprocess shape and the Pillow-exact
// bilinear resize. Expected resize outputs were produced by Pillow 9.4 (Debian's python3):
//   Image.fromarray(a, mode).resize((neww, newh), Image.BILINEAR), mode L / RGB / CMYK,
// with `a` the 13x17 fixture of fixture() below (the same formula in numpy).
#include <catch2/catch.hpp>

#include "data/image.h"
#include "test_util.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <unistd.h>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using sam::data::image_decode_rgb;
using sam::data::image_read_rgb;
using sam::data::preprocess_shape;
using sam::data::resize_fast;
using sam::data::resize_pil_bilinear;

namespace {

// A deterministic pseudo-random HxWxC uint8 image (a multiplicative hash of the coordinates).
cv::Mat fixture(int h, int w, int c) {
  cv::Mat m(h, w, CV_8UC(c));
  for (int i = 0; i < h; ++i) {
    uint8_t* row = m.ptr<uint8_t>(i);
    for (int j = 0; j < w; ++j) {
      for (int k = 0; k < c; ++k) {
        const uint32_t v =
            (uint32_t(i) * 73856093u) ^ (uint32_t(j) * 19349663u) ^ (uint32_t(k) * 83492791u);
        row[j * c + k] = static_cast<uint8_t>((v * 2654435761u) >> 24);
      }
    }
  }
  return m;
}

cv::Mat from_hex(const char* hex, int h, int w, int c) {
  const std::string s(hex);
  REQUIRE(s.size() == size_t(h) * w * c * 2);
  cv::Mat m(h, w, CV_8UC(c));
  for (size_t i = 0; i < s.size() / 2; ++i)
    m.data[i] = static_cast<uint8_t>(std::stoi(s.substr(2 * i, 2), nullptr, 16));
  return m;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

int64_t byte_sum(const cv::Mat& m) {
  int64_t s = 0;
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* p = m.ptr<uint8_t>(y);
    for (size_t i = 0; i < size_t(m.cols) * m.channels(); ++i) s += p[i];
  }
  return s;
}

// sum of v[i] * (i % 1000 + 1) over the bytes in HWC order: sensitive to where each value sits.
int64_t weighted_sum(const cv::Mat& m) {
  REQUIRE(m.isContinuous());
  int64_t s = 0;
  for (size_t i = 0; i < m.total() * m.channels(); ++i)
    s += int64_t(m.data[i]) * int64_t(i % 1000 + 1);
  return s;
}

std::vector<uint8_t> pixel(const cv::Mat& m, int y, int x) {
  const uint8_t* p = m.ptr<uint8_t>(y) + size_t(x) * m.channels();
  return std::vector<uint8_t>(p, p + m.channels());
}

// Pillow 9.4 outputs for fixture(13, 17, C).
// kRgbTo5x7: (5, 7, 3)
const char* const kRgbTo5x7 =
    "71707b7163729b66867e688f7a548f74698e7d6f5f717f66617f646d5b7c786f5585887c988c808e8269786c817471"
    "7b"
    "807784657e828c766da199947da2817f9682729a6e947871627a65716f70719762988a7c6f828378aa5c9ea182668e"
    "61"
    "796a7a798586626860";
// kRgbTo20x31: (20, 31, 3)
const char* const kRgbTo20x31 =
    "007dfa1e5cde5125af841a74b81d35673a701f5ea553a26686ce45bac16aabc28952d2a354dc9587e172bae485eee6"
    "a4"
    "956aa85504a78907898b17643240342355485757988a4fc8bd42ea7544da2449be585b568b6920bf6b8cdd6ccc4988"
    "db"
    "4c7cc24f68987b6273b45f4e7c4a54453c6043747254977d978973b0847c98889d8585ab747db19d7cadd27da7826f"
    "82"
    "475b686b2b79811d817c4e7872668b6566b76855b3733c9c543fb23246c5446c5f5d882293886ab288948d83a67a8e"
    "93"
    "59a07277a76aaaaa6a945e46751a2e3a40812856af794680ba3a73e6338cc028af6e1ad87d19c99f1cad6979693eb3"
    "3b"
    "4b50707225a0cb5ec3ce7bd28380cd5368932e41443b49794d58b7427c6843973069954380944d4c284b672f41943c"
    "30"
    "996e4890ac6c926b99912cbc6b3c8e644277a52e96d2228de81f55dc353fbc583a7a6f732f82ba4c8bbd6086bb4e41"
    "9c"
    "632998c15ebfe48dbbd1b68fa6a46572793c7a9d3c8cc441b0715fc0316b8c2e3b6e2b20766950816d469274349595"
    "4c"
    "92c072909b828a778e5d828a4b798f7d3fabad27a3db3472c94d45936d1a566b451662843f5e88615788654677704d"
    "7d"
    "897fac9b94b7a88fa2aa9280a897599ead4f98c14ad2895dee5864a43d3e792c28c7e67aa6e5716ee4607bd9669dcc"
    "73"
    "8dcc3b75ce1132db7b0ec6c1325fb16b39a9bc5bad9e677f42683732433234163c46271b5c3b08865d2e89825b43ac"
    "92"
    "3496b7554ace8b61afc8a27dad95868c8093c5ab68e4bd47a98048875c4986ae30699e5c3884a6506a897f504c8072"
    "3a"
    "769431369f601190772e444f49354a616b6d7a685d9545339c6349a08e6daca836b4bc0eabb62a8faf5054a88a5d9a"
    "91"
    "a2846b9a8255708745855a8a9f2ed28995b36fcf904a7c64354b4a4481454369704041bb5328896e132f713b2b6c66"
    "31"
    "34905e13997727525d31435f3073815f7787aa647da7816a95a854a6ae35b5b024bc9a4faa947b68aca976b295caa8"
    "46"
    "ba9f4980956d8c65a69e38db7f93b161ca8546925437713709609d3045a17317a9770a6f69072163211659451b30a1"
    "6e"
    "16c9ac207cb7255ec22475ce4f91e293b0f96f9d9036810b545f23784044be2e8fcf49c77cb5df82d7b5d5ba51e4b6"
    "77"
    "d7bdd6b3a2d38e85be98a17c9ab74382b62674b7166d98c56974a2623768804176aa619c89696b656d424960823954"
    "a9"
    "464a946858949f81acb498beb6a4cc6ea8b416aa92495d797721659737719a60746baa667bc370c2b18ed1a0a8c88f"
    "bf"
    "9599ca63a7d183c1c593c2a67072495b44137e82c67c7896786745918176b4a8d09b8e9a8071686a5fa25d4db8683b"
    "78"
    "8c525dcb996dc59f7d9a818a5599b308bde138679d6623658a356b9556676f974f7bb55db2b48bc09ca6bd7cb8918a"
    "bb"
    "669fbb82c8b390d3a16f81705c51533d1da069517db4a840aac96e87dabd9a90a3ab518d919ece81b5da844f63914d"
    "1e"
    "a6bd1383a61e40463322728d0cb9f6227d8e43474299267cbe2ca08a7c9a84ac7ca6c04ab3aa72b683c1a774a5986d"
    "7b"
    "96b54790e9367fe29b75ded79b8258a2a255aed85087ab775160ac82879bb4b287bccb83bece6eae9f31b57c35d465"
    "81"
    "c478789ba23f59914e11746c564d54902b42941950862c535585445492347e5b238e6b3692985792806190656691ac"
    "55"
    "91d8538fb0878e98a4b99e54b0bb5c9fed6b6faf82354d9b62888591c56fa5c668b0bf54a3a523ab7c44c743c3c563"
    "b2"
    "b2b552749e302c701b7b4c3cb5315896425e745d554f8a314978225e2e256d562d7aaf377a9a437a7a5093a960a9bd"
    "72"
    "b17e87b75993774cb07d83a689e1966ae78e3ed2893a985e37673f347e943a7eb04f41455f3b446671bb6675b5605d"
    "69"
    "628c4166ca20878c57a1688da1b5c09bcec88f87837360604a545c54826a72ca8063c35c53b237a1ad64e1978ced56"
    "a7"
    "f42fb8356fbc646dbab56ab7817987258c492d8c413e8f3e68b25388b462906068944778946c96706d9c395a943885"
    "8b"
    "43be845474666342596a7f9b699ebb5c889e4f8a9c40a1b353bf9d73e0745dcd6145b254737963984c7da34abcaa48"
    "e2"
    "2d70a6655aacc635b784427f115e3329893e4fb14b91c63cbdc541b58e7bb47495bb788e8e7a92447c9b3294a02bb1"
    "a6"
    "2e67663230394156654575893587a13f9ac35eb1ed64c4c760d67e62c86963b15b54535e4f186d6e4da7816dc99215"
    "65"
    "92446c91937a5a9b7a128d75319e6b57aa657d808f92759f80b86f8acd79b4afc2b8b6aaa8d05c78c94241bb343183"
    "4a"
    "285956457130528134408083696ac0c742ea945ce32591c676af79d3c12c625651231666806944b79a306f4761726d"
    "72"
    "75ae906bbf8a5cc2797ec2539ec0359ab05893a6758aab8499b487c2c27dbbbd799bae7783b4506cbe216270516034"
    "74"
    "7e4b5692674d948a6bb1737fe7298caa2f963d559e72986ab3d6325988461f4d5549514f62534b3f83694d968264b6"
    "ae"
    "81d0999ee970c2df37ddd606b7e8189cdf3f9c9898ad8e99d0ca36b7ba487f819a81986d8fbf248f5a5c940b89b124"
    "81"
    "cb4d73df945aeb8446f22637b5184b5c2a6d6b875984e63f4fb53f247e4715366a0c0c7e";
// kRgbTo9x40: (9, 40, 3)
const char* const kRgbTo9x40 =
    "3685e33b7ed84768b75351957d5074a84e52974a506243643d4a7145786f4da56e7ba06fac9570b0937e919996789d"
    "a8"
    "799aa47996a09c96a2c597a5ba879c7a6788484778672c7b86107f7c2874684d665e61706062996361be7451b78440"
    "b1"
    "6c3eb74542c2344eab49675b5e7f10878050b0818ebd81a2654b67694f6178595086643f8e835296a466958e769157"
    "83"
    "83338b61448a3e54886b458d9f3394c42a89dd2871e92a5fc33a639d4a657c53815d5b9f4f6ba853849b57918e525b"
    "8b"
    "4d24887f3aa1c064c0da84c7c197b0a9a697888b6f687047687c4972965b819865947762a6565e9151497c4c35754a"
    "2e"
    "9fb45996b35b7bae6460a96c75a76a8ba4688ea35987a44476a74047b06f18b99d2e7f994b3f906f328b9a4c8bb561"
    "81"
    "9160566d5f2b5e5839525151555352665e3b77682a836f3a90774a798a6f58a098539fad727ea78e639f997c83a495"
    "66"
    "a190709880869d818eb79c7bcfb569a487587859466a4a4135785a386e69444e96502dc45c20836913406d21256d40"
    "24"
    "6263303a8e5a12b7841b887d284f712d48772c698d37819e707b9da8769c9e847b899654869c3a959a2da49529b685"
    "50"
    "c97578a18d996ab0b969beadaab26be3a833bea45b99a0839484a4995ec3965dc88597a274ce7d61ae5b4d8d3a4683"
    "2f"
    "6e86c26f7eb270647e714a4a896275a37ba39e7f9988756d726c5a5e668a4a60ba5052a059427f755478a07f85bea1"
    "94"
    "b0989fa290ab6c9cb02faab32393a247567f6a246288306ca63c76906b6f6da36270bf65a0b77bcdaf91c89ca6c38a"
    "bb"
    "a58dc17f97c36fa8bf85c3b499dba77fa2786668485e55398368698a7865a0a856b6d94791b374698ba27282a8978e"
    "95"
    "b39d8ab2bb94b3d99eabb06aa2802fab702dc17857ca7f73a58556818b39548a5527867c26747d52535a7b33408e22"
    "54"
    "a21167874364608659589f4b778337936b28977d4b9b906d99867395706f92776492ae5092e33d8ecb6f8ab2a288ab"
    "b2"
    "796e987f7c978fa794a0d19072b98943a0803a9370488f59568f51619f706eaf8f7488687b5c3882504e8c5d9a9069"
    "cc"
    "7e709b6d77695f8b5352a1425c96437d6957984a6d91758d8ba0ad7d9a956e876f60765c5465604a5b645e8e6572c2"
    "67"
    "6ec25c60ae4e68a04c919d62ba9979c37494cc4eafce42b84c55955c55978f579fc258a779647f2c6f561d82493699"
    "4d"
    "54ab527eae57a8b25ba6a26a9e9078a28889af8799b188a3878c955d91874b9f833cae81349c72336658343c454359"
    "56"
    "5076674a807f3d85994589b5678dd48491ed6ca9c254c1975ec37775be5d78a04f5c575b411266663d7e8b68979676"
    "9f"
    "63566365646b6c908472bc9e70c48d6dca7c7ecb609bc83fadc52ca3bf4499b95b93af758da38f9ca98cbabd74cdc9"
    "63"
    "afb57292a18284aa607ab836729e356c5d5c6b287b833a689a4d55a36c5ba78e67b88670d84974ef14799e2d854d47"
    "90"
    "5d7b758eb84d94c9395692451a5c512f51544545574c4158";
// kRgbTo13x8: (13, 8, 3)
const char* const kRgbTo13x8 =
    "4941b264546f8bc07790dc8b884095524469784bbf94647679a78e706054814585951aca636864995dbe344e854c97"
    "54"
    "7c2e2e8e5b99b52782ab6541516dc5c08098aaac3eb233479bea6c71dc54577aaf5a4f565638275783a4ab8d8fbe93"
    "50"
    "4863705c5b5131573b9e694dc5d83a83a3617f667a4281994c2b8c57423d2185b05f95b4815159abacadbfa9a88caf"
    "48"
    "857892836e8c7b498ca09fb66152838a9e64989eca6e86958482769b9da7907e654b80565659849d8b83a88e8589d1"
    "78"
    "a2ba5791a57ed5aa4eaf895f802b31505d12827a3394996e71aba2399c744554785e7b7093a2897a858567b166d277"
    "8d"
    "6f48a75b8e38bc8e6a4a72a83457743ba9bd57c37d5e4a9f7c6d6a4d968187ad919ccc653b813e75649f7e7e967764"
    "3d"
    "62ae8cb5df3daeb56598a164a0466dda5f527c6c512d6b58";
// kRgbTo6x17: (6, 17, 3)
const char* const kRgbTo6x17 =
    "4c72b8635d76ae74555a327343867dbd6a7aa96e90817297ab7bab497278720e85986a8d7a7cb57048804663aa6d74"
    "29"
    "a17377888e566d8b5f92a368867f5723989476248ec84f777e5b314b5c7971794e7d5d5f779db99e7c98918d528f87"
    "83"
    "c6956c6a45394e87845b37978539556d642b1d9e9c3b3b7a6587a6a887a9529a5d896438c05e7d4dc7a5d9a35ca99a"
    "a3"
    "866dcf8bd18c546f297c6c909eaf457991bb9a837389a9b587502ecc947b808158139ea66f324ea82b7756ac55a185"
    "50"
    "a68f937f7c8698e0657e8791696d97afa89926846a52984c88b8788b5c42a36cc562806f42ab537b3d5977949d5483"
    "70"
    "576b8d6ecf6c61a749967271b951b6614f718f9b9e46a96788bd39a0ae648ea18dccb48180a27e5cbb404f2f678060"
    "50"
    "7a9786d53bab3a7997a6d23a203a596c5b68";
// kGrayTo6x11: (6, 11, 1)
const char* const kGrayTo6x11 =
    "558b579b978e608971588c7d865f70a35e7782969f8e53754f3b826fa285b98d6a89899094a63c8a78a18c89845564"
    "8f"
    "8454775b6473ab73658c9ea6616992816f4e";
// kCmykTo4x30: (4, 30, 4)
const char* const kCmykTo4x30 =
    "63799588667685786a716b5f867e6359a18a5f5a8263667a6355708c457881845b7687799a55866cb1558666bd5c85"
    "61"
    "99627c6b7f677b758169907a756d8e935a7473c05f5472b870267b9b8655919e957ca4a08c7eaa9c84779d807c6678"
    "47"
    "70697c75617594d479796ab18f7942858e6b53708e635d646489717e6378787d615e827b755e7370886260657f6c4b"
    "64"
    "697b4f6e3994848f307c9097493d7a8a67538190857d8d998f777e668c7772546485709f5e8360ac7b71437c956851"
    "71"
    "ad646e747c928d6f61b49f70a1a17e8cbc977399a896839599879a828d72b469969c9c6998bc7d6e7084527d586238"
    "86"
    "767490788587817f9ca5688b80957f81608199757486787e82916d8384a88d8284947c88856043929d68669bb87e9d"
    "a2"
    "96837e87708b6b703d9677633c7f715c6e435859893e686b9b4b8582757c6f995a9e5ba378865b7d8d85656f969e7b"
    "82"
    "8a9b7e787489776089a6717b9dbc6f92968e876f9272965961558292766d8ca298939bbd6b9a827c399d633559a74e"
    "59"
    "75ad496b8cae635993a270508d8c734ea1918561b99c9a7a909787806d9a73845bae598153945277574a5e65665166"
    "5e"
    "79766c5b70847a8a70878aad9466a0959065a4865c8e928265ab6f918bc243a96a8351ad4d4765ac735379a18a5b84"
    "9a";

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sam_test_image_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

// The exception's message, or "" when none is thrown.
std::string error_of(const std::string& path) {
  try {
    image_read_rgb(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("preprocess_shape matches the reference's golden values", "[image]") {
  CHECK(preprocess_shape(1500, 2250, 1024) == std::make_pair(683, 1024));
  CHECK(preprocess_shape(480, 640, 1024) == std::make_pair(768, 1024));
  CHECK(preprocess_shape(333, 1000, 1024) == std::make_pair(341, 1024));
  CHECK(preprocess_shape(1000, 333, 1024) == std::make_pair(1024, 341));
  CHECK(preprocess_shape(1024, 1024, 1024) == std::make_pair(1024, 1024));
  CHECK(preprocess_shape(480, 640, 256) == std::make_pair(192, 256));
  CHECK_THROWS_AS(preprocess_shape(0, 10, 1024), std::invalid_argument);
}

TEST_CASE("resize_pil_bilinear is bit-exact with Pillow on RGB", "[image]") {
  const cv::Mat src = fixture(13, 17, 3);
  // The formula is the one the fixtures were made from.
  CHECK(pixel(src, 0, 0) == std::vector<uint8_t>{0, 125, 250});
  CHECK(pixel(src, 1, 2) == std::vector<uint8_t>{179, 169, 105});
  SECTION("down to 5x7") {
    CHECK(same(resize_pil_bilinear(src, 5, 7), from_hex(kRgbTo5x7, 5, 7, 3)));
  }
  SECTION("up to 20x31") {
    CHECK(same(resize_pil_bilinear(src, 20, 31), from_hex(kRgbTo20x31, 20, 31, 3)));
  }
  SECTION("mixed to 9x40") {
    CHECK(same(resize_pil_bilinear(src, 9, 40), from_hex(kRgbTo9x40, 9, 40, 3)));
  }
  SECTION("width only (no vertical pass)") {
    CHECK(same(resize_pil_bilinear(src, 13, 8), from_hex(kRgbTo13x8, 13, 8, 3)));
  }
  SECTION("height only (no horizontal pass)") {
    CHECK(same(resize_pil_bilinear(src, 6, 17), from_hex(kRgbTo6x17, 6, 17, 3)));
  }
  SECTION("same size is a copy") {
    const cv::Mat out = resize_pil_bilinear(src, 13, 17);
    CHECK(same(out, src));
    CHECK(out.data != src.data);
  }
}

TEST_CASE("resize_pil_bilinear handles 1, 2 and 4 channels and ROIs", "[image]") {
  SECTION("1 channel = Pillow L") {
    CHECK(same(resize_pil_bilinear(fixture(13, 17, 1), 6, 11), from_hex(kGrayTo6x11, 6, 11, 1)));
  }
  SECTION("4 channels = Pillow CMYK (no alpha premultiplication)") {
    CHECK(same(resize_pil_bilinear(fixture(13, 17, 4), 4, 30), from_hex(kCmykTo4x30, 4, 30, 4)));
  }
  SECTION("2 channels = each channel on its own") {
    const cv::Mat src = fixture(13, 17, 2);
    std::vector<cv::Mat> planes, outs;
    cv::split(src, planes);
    for (const cv::Mat& p : planes) outs.push_back(resize_pil_bilinear(p, 7, 23));
    cv::Mat expected;
    cv::merge(outs, expected);
    CHECK(same(resize_pil_bilinear(src, 7, 23), expected));
  }
  SECTION("a non-contiguous ROI gives the result of its copy") {
    const cv::Mat big = fixture(40, 50, 3);
    const cv::Mat roi = big(cv::Rect(5, 7, 31, 23));
    REQUIRE_FALSE(roi.isContinuous());
    CHECK(same(resize_pil_bilinear(roi, 11, 9), resize_pil_bilinear(roi.clone(), 11, 9)));
    CHECK(same(resize_pil_bilinear(roi, 40, 45), resize_pil_bilinear(roi.clone(), 40, 45)));
  }
  SECTION("bad inputs") {
    CHECK_THROWS_AS(resize_pil_bilinear(cv::Mat(), 4, 4), std::invalid_argument);
    CHECK_THROWS_AS(resize_pil_bilinear(cv::Mat(4, 4, CV_32FC3), 2, 2), std::invalid_argument);
    CHECK_THROWS_AS(resize_pil_bilinear(fixture(4, 4, 3), 0, 2), std::invalid_argument);
  }
}

TEST_CASE("golden image: OpenCV decode equals PIL's, resize equals PIL's", "[image]") {
  // Dev-time check (Pillow 9.4 and OpenCV 4.6, both on Debian's libjpeg-turbo): Image.open(...)
  // .convert("RGB") and our decode are identical, byte for byte, so the checksums below serve both.
  const cv::Mat img = image_read_rgb((sam_test::golden_tiny() / "image.jpg").string());
  REQUIRE(img.rows == 480);
  REQUIRE(img.cols == 640);
  REQUIRE(img.type() == CV_8UC3);
  CHECK(byte_sum(img) == 57603336);
  CHECK(weighted_sum(img) == 28901253159LL);
  CHECK(pixel(img, 100, 200) == std::vector<uint8_t>{235, 220, 225});
  CHECK(pixel(img, 240, 320) == std::vector<uint8_t>{2, 48, 100});
  CHECK(pixel(img, 479, 639) == std::vector<uint8_t>{1, 1, 1});

  const auto [newh, neww] = preprocess_shape(img.rows, img.cols, 256);
  const cv::Mat out = resize_pil_bilinear(img, newh, neww);
  REQUIRE(out.rows == 192);
  REQUIRE(out.cols == 256);
  // Image.fromarray(decoded).resize((256, 192), Image.BILINEAR)
  CHECK(byte_sum(out) == 9215635);
  CHECK(weighted_sum(out) == 4616278138LL);
  CHECK(pixel(out, 50, 100) == std::vector<uint8_t>{14, 18, 23});
  CHECK(pixel(out, 95, 128) == std::vector<uint8_t>{11, 54, 104});
  CHECK(pixel(out, 150, 20) == std::vector<uint8_t>{141, 93, 99});
}

TEST_CASE("image_read_rgb converts formats to RGB uint8", "[image]") {
  TempDir dir;
  const cv::Mat rgb = fixture(9, 11, 3);
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::Mat gray = fixture(9, 11, 1);
  cv::Mat gray3;
  cv::cvtColor(gray, gray3, cv::COLOR_GRAY2RGB);

  SECTION("grayscale PNG is replicated") {
    REQUIRE(cv::imwrite(dir.file("g.png"), gray));
    CHECK(same(image_read_rgb(dir.file("g.png")), gray3));
  }
  SECTION("RGBA PNG drops alpha without compositing") {
    cv::Mat bgra;
    cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
    std::vector<cv::Mat> ch;
    cv::split(bgra, ch);
    ch[3] = fixture(9, 11, 1);  // varied alpha, zeros included
    cv::merge(ch, bgra);
    REQUIRE(cv::imwrite(dir.file("rgba.png"), bgra));
    CHECK(same(image_read_rgb(dir.file("rgba.png")), rgb));
  }
  SECTION("16-bit PNG maps by round(v / 257)") {
    cv::Mat g16(2, 4, CV_16UC1);
    const uint16_t vals[8] = {0, 128, 129, 385, 386, 257 * 100, 65406, 65535};
    std::copy(vals, vals + 8, g16.ptr<uint16_t>());
    REQUIRE(cv::imwrite(dir.file("g16.png"), g16));
    const cv::Mat out = image_read_rgb(dir.file("g16.png"));
    REQUIRE(out.type() == CV_8UC3);
    const uint8_t expect[8] = {0, 0, 1, 1, 2, 100, 254, 255};
    for (int i = 0; i < 8; ++i) {
      CHECK(pixel(out, i / 4, i % 4) == std::vector<uint8_t>(3, expect[i]));
    }
    cv::Mat c16;
    rgb.convertTo(c16, CV_16UC3, 257.0);
    cv::cvtColor(c16, c16, cv::COLOR_RGB2BGR);
    REQUIRE(cv::imwrite(dir.file("c16.png"), c16));
    CHECK(same(image_read_rgb(dir.file("c16.png")), rgb));
  }
  SECTION("BMP") {
    REQUIRE(cv::imwrite(dir.file("c.bmp"), bgr));
    CHECK(same(image_read_rgb(dir.file("c.bmp")), rgb));
  }
  SECTION("decode from memory equals read from file") {
    REQUIRE(cv::imwrite(dir.file("c.png"), bgr));
    CHECK(same(image_decode_rgb(read_bytes(dir.file("c.png")), "mem"), rgb));
  }
}

TEST_CASE("image_read_rgb names the file in its errors", "[image]") {
  TempDir dir;
  const auto jpeg = read_bytes((sam_test::golden_tiny() / "image.jpg").string());
  SECTION("truncated JPEG") {
    const std::string p = dir.file("half.jpg");
    write_bytes(p, std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));
    const std::string err = error_of(p);
    CHECK(err.find(p) != std::string::npos);
    CHECK(err.find("truncated") != std::string::npos);
  }
  SECTION("JPEG with trailing bytes after its end is fine") {
    const std::string p = dir.file("trail.jpg");
    std::vector<uint8_t> b = jpeg;
    b.insert(b.end(), {'x', 'y', 0, 0});
    write_bytes(p, b);
    CHECK(error_of(p).empty());
  }
  SECTION("text named .jpg") {
    const std::string p = dir.file("text.jpg");
    const std::string text = "this is not an image\n";
    write_bytes(p, std::vector<uint8_t>(text.begin(), text.end()));
    CHECK(error_of(p).find(p) != std::string::npos);
  }
  SECTION("truncated PNG") {
    cv::Mat big = fixture(64, 80, 3);
    std::vector<uint8_t> png;
    REQUIRE(cv::imencode(".png", big, png));
    const std::string p = dir.file("half.png");
    write_bytes(p, std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2));
    CHECK(error_of(p).find(p) != std::string::npos);
  }
  SECTION("empty and missing files, a directory") {
    const std::string empty = dir.file("empty.png");
    write_bytes(empty, {});
    CHECK(error_of(empty).find(empty) != std::string::npos);
    const std::string missing = dir.file("missing.png");
    CHECK(error_of(missing).find(missing) != std::string::npos);
    CHECK(error_of(dir.path.string()).find(dir.path.string()) != std::string::npos);
  }
  SECTION("decode names `what`") {
    try {
      image_decode_rgb({1, 2, 3}, "bytes of sample 7");
      FAIL("no exception");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("bytes of sample 7") != std::string::npos);
    }
  }
}

TEST_CASE("resize_fast uses INTER_AREA to shrink and INTER_LINEAR to enlarge", "[image]") {
  const cv::Mat src = fixture(40, 60, 3);
  cv::Mat area, linear;
  cv::resize(src, area, cv::Size(25, 17), 0, 0, cv::INTER_AREA);
  cv::resize(src, linear, cv::Size(90, 50), 0, 0, cv::INTER_LINEAR);
  CHECK(same(resize_fast(src, 17, 25), area));
  CHECK(same(resize_fast(src, 50, 90), linear));
  const cv::Mat copy = resize_fast(src, 40, 60);
  CHECK(same(copy, src));
  CHECK(copy.data != src.data);
}
